"""A tiny EMOv2 segmentor learns from scratch through the user's doors (tools/train.py, then
tools/test.py on its checkpoint and on its ONNX export, mmseg's inference APIs), and trains
under tools/dist_train.sh (2 CPU processes, DDP without find_unused_parameters: every parameter
of the built stages is used).

EMOv2's layer scales start at 1e-6, so from scratch its features are ~1e-8 at first and the
model predicts the majority class until the scales have grown (~60 iterations here); the floors
sit well under what the schedule reached (held-out mIoU 18.9 -> 69.5 at iteration 80, one run,
seed 0, 1 thread), yet fail for a model that does not learn.
"""
import math
import re
import sys
from pathlib import Path

import pytest
import torch
from conftest import (CONFIGS, REPO, free_port, helpers_on_pythonpath, python_tool, run_tool,
                      with_rank_weights)

from emo_mm.analysis import read_scalars
from emo_mm.analysis.work_dir import latest_checkpoint, read_test_metrics

pytestmark = pytest.mark.slow
CONFIG = CONFIGS / 'deeplabv3' / 'emov2_1m_tiny.py'


@pytest.fixture(scope='module')
def trained(tmp_path_factory, demo_data) -> Path:
    """The tiny DeepLabv3-EMOv2-1M trained by tools/train.py (200 iterations, one process)."""
    work_dir = tmp_path_factory.mktemp('emov2_deeplabv3_tiny')
    run_tool(python_tool('train.py', CONFIG, '--work-dir', work_dir), cwd=demo_data,
             timeout=3600)
    return work_dir


def test_the_tiny_segmentor_learns(trained):
    records = read_scalars(trained)
    losses = [r['loss'] for r in records if 'loss' in r]
    mious = [r['mIoU'] for r in records if 'mIoU' in r]
    print(f'losses {losses[0]:.3f} -> {losses[-1]:.3f}; held-out mIoU {mious}')
    assert losses and all(math.isfinite(loss) for loss in losses)
    assert losses[-1] < 0.5 * losses[0]
    assert len(mious) >= 5
    assert mious[-1] >= 50.0 and mious[-1] >= 2 * mious[0]


def test_the_test_tool_reproduces_the_last_evaluation(trained, demo_data, tmp_path):
    checkpoint = latest_checkpoint(trained)
    run_tool(python_tool('test.py', CONFIG, checkpoint, '--work-dir', tmp_path), cwd=demo_data)
    last = [r['mIoU'] for r in read_scalars(trained) if 'mIoU' in r][-1]
    assert read_test_metrics(tmp_path)['mIoU'] == pytest.approx(last, abs=0.01)


def test_the_inference_apis_predict_as_the_models_test_step(trained, demo_data, monkeypatch):
    """``inference_model`` on held-out images gives what the model's own ``test_step`` gives on
    the test loader's batches of them (same process, same weights: exactly); ``MMSegInferencer``
    the same label maps."""
    from mmengine.runner import Runner
    from mmseg.apis import MMSegInferencer, inference_model, init_model
    monkeypatch.chdir(demo_data)  # the config's data root is relative
    checkpoint = str(latest_checkpoint(trained))
    model = init_model(str(CONFIG), checkpoint, device='cpu')
    loader = Runner.build_dataloader(dict(model.cfg.test_dataloader, num_workers=0,
                                          persistent_workers=False))
    inferencer = MMSegInferencer(str(CONFIG), checkpoint, device='cpu')
    labels = set()
    for batch, _ in zip(loader, range(2)):
        with torch.no_grad():
            expected = model.test_step(batch)
        for sample in expected:
            result = inference_model(model, sample.img_path)
            assert torch.equal(result.seg_logits.data, sample.seg_logits.data), sample.img_path
            assert torch.equal(result.pred_sem_seg.data, sample.pred_sem_seg.data)
            # One image: MMSegInferencer returns its SegDataSample itself.
            predicted = inferencer(sample.img_path, return_datasamples=True)
            assert torch.equal(predicted.pred_sem_seg.data, sample.pred_sem_seg.data)
            labels |= set(sample.pred_sem_seg.data.unique().tolist())
    assert len(labels) >= 2, f'a learned model predicts several classes, got {labels}'


def test_the_onnx_export_scores_as_the_checkpoint(trained, demo_data, tmp_path):
    onnx_file = tmp_path / 'emov2_deeplabv3_tiny.onnx'
    run_tool(python_tool('export_onnx.py', CONFIG, latest_checkpoint(trained), '--out',
                         onnx_file), cwd=demo_data)
    run_tool(python_tool('test.py', CONFIG, onnx_file, '--work-dir', tmp_path / 'onnx'),
             cwd=demo_data)
    last = [r['mIoU'] for r in read_scalars(trained) if 'mIoU' in r][-1]
    assert read_test_metrics(tmp_path / 'onnx')['mIoU'] == pytest.approx(last, abs=0.01)


def test_dist_train_with_two_cpu_processes_keeps_replicas_identical(demo_data, tmp_path):
    config = tmp_path / 'dist.py'
    with_rank_weights(CONFIG, tmp_path / 'with_hook.py')
    config.write_text("_base_ = './with_hook.py'\n"
                      'train_cfg = dict(max_iters=2, val_interval=100)\n'
                      'default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=2))\n')
    work = tmp_path / 'work'
    output = run_tool([str(REPO / 'tools' / 'dist_train.sh'), str(config), '2', '--work-dir',
                       str(work)], cwd=demo_data,
                      env=dict(PORT=str(free_port()), PYTHON=sys.executable,
                               **helpers_on_pythonpath()))
    assert re.search(r'Iter\(train\) \[2/2\]', output)
    start, end = ([torch.load(work / f'{when}_rank{r}.pth') for r in (0, 1)]
                  for when in ('start', 'end'))
    assert end[0].keys() == end[1].keys() and any(k.startswith('backbone.stage4') for k in end[0])
    for name, weight in end[0].items():
        assert torch.equal(start[0][name], start[1][name]), name  # DDP's broadcast
        assert torch.equal(weight, end[1][name]), name
    moved = [name for name, weight in end[0].items() if not torch.equal(weight, start[0][name])]
    assert any(name.startswith('backbone.stage4') for name in moved)
