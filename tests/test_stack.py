"""The user's path from training to a deployed file, end to end in one short run: what `.ci/run`
checks on the oldest supported stack (torch 2.1.2, numpy < 2, mmcv 2.1.0 built against it)
beside `make test-quick`. On the newest stack `make test` covers each step at length, so this
module (marker ``stack``) runs there only when asked: ``pytest -m stack``.

DeepLabv3-EMO-1M (the demo's tiny config) trains 4 iterations in 2 processes
(tools/dist_train.sh, gloo), is evaluated by tools/test.py, exported by tools/export_onnx.py,
and the .onnx file's logits are compared with the checkpoint's through mmseg's inference API.
"""
import re
from pathlib import Path

import pytest
import torch
from conftest import (CONFIGS, TOOLS, assert_close, free_port, helpers_on_pythonpath,
                      python_tool, run_tool, with_rank_weights)

pytestmark = [pytest.mark.stack, pytest.mark.slow]
CONFIG = CONFIGS / 'deeplabv3' / 'emo_1m_tiny.py'
ITERS = 4
OPTIONS = [f'train_cfg.max_iters={ITERS}', 'train_cfg.val_interval=1000',
           f'default_hooks.checkpoint.interval={ITERS}', f'param_scheduler.0.end={ITERS}',
           'train_dataloader.num_workers=0', 'train_dataloader.persistent_workers=False']
MIOU = re.compile(r'mIoU: ([\d.]+)')


@pytest.fixture(scope='module')
def trained(tmp_path_factory) -> dict:
    """The 2-process training, in a directory holding the tiny ADE20K set."""
    from emo_mm.datasets.tiny_ade import make_tiny_ade
    cwd = tmp_path_factory.mktemp('stack')
    make_tiny_ade(cwd / 'data' / 'tiny_ade')
    config = with_rank_weights(CONFIG, cwd / 'config.py')
    work = cwd / 'work'
    output = run_tool(['bash', TOOLS / 'dist_train.sh', config, '2', '--work-dir', work,
                       '--cfg-options', *OPTIONS], cwd=cwd,
                      env=dict(PORT=str(free_port()), **helpers_on_pythonpath()))
    return dict(cwd=cwd, work=work, output=output, checkpoint=work / f'iter_{ITERS}.pth')


def test_two_processes_train_with_identical_replicas(trained):
    assert 'Distributed launcher: pytorch, 2 processes (backend gloo' in trained['output']
    assert trained['checkpoint'].is_file()
    ranks = [torch.load(trained['work'] / f'state_rank{r}.pth', map_location='cpu')
             for r in (0, 1)]
    assert ranks[0].keys() == ranks[1].keys()
    assert all(torch.equal(ranks[0][k], ranks[1][k]) for k in ranks[0])


def test_the_checkpoint_evaluates_and_exports_to_the_same_logits(trained, tmp_path):
    from mmseg.apis import inference_model, init_model

    from emo_mm.deploy import init_onnx_model
    tested = run_tool(python_tool('test.py', CONFIG, trained['checkpoint'], '--work-dir',
                                  tmp_path / 'test'), cwd=trained['cwd'])
    assert len(MIOU.findall(tested)) == 1
    onnx_file = tmp_path / 'seg.onnx'
    run_tool(python_tool('export_onnx.py', CONFIG, trained['checkpoint'], '--out', onnx_file),
             cwd=trained['cwd'])
    image = next(Path(trained['cwd'] / 'data' / 'tiny_ade' / 'images' / 'validation')
                 .glob('*.jpg'))
    ours = init_onnx_model(str(CONFIG), str(onnx_file))
    theirs = init_model(str(CONFIG), str(trained['checkpoint']), device='cpu')
    result, expected = inference_model(ours, str(image)), inference_model(theirs, str(image))
    assert_close(result.seg_logits.data, expected.seg_logits.data, image.name, rtol=1e-4)
