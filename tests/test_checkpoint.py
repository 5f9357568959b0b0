"""Loading the authors' checkpoints, and mmengine checkpoints with weights-only safety on every
supported torch (torch >= 2.5: torch's allow-list; 2.1-2.4: emo_mm's restricted unpickler)."""
import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from conftest import free_port
from mmengine.logging import HistoryBuffer, MMLogger

from emo_mm import EMO
from emo_mm.checkpoint_io import CheckpointError, load_weights_only, read_checkpoint
from emo_mm.models.backbones import pretrained
from emo_mm.testing.emo_reference import ReferenceEMO, randomize


TORCH_VERSION = tuple(int(part) for part in torch.__version__.split('.')[:2])


def authors_checkpoint(path: Path, arch: str = '1m', seed: int = 0) -> dict:
    """A flat state_dict as the authors release it: backbone keys + classifier norm/head."""
    reference = ReferenceEMO(arch)
    randomize(reference, seed)
    state = dict(reference.state_dict())
    width = state['stage4.0.proj.conv.weight'].shape[0]
    state.update({'norm.weight': torch.ones(width), 'norm.bias': torch.zeros(width),
                  'head.weight': torch.randn(1000, width), 'head.bias': torch.zeros(1000)})
    torch.save(state, path)
    return state


def test_authors_checkpoint_loads_through_init_cfg(tmp_path):
    from mmdet.registry import MODELS
    path = tmp_path / 'net.pth'
    state = authors_checkpoint(path)
    logger = MMLogger.get_instance('test_authors_checkpoint', log_file=str(tmp_path / 'log.txt'))
    model = MODELS.build(dict(type='EMO', arch='1m', init_cfg=dict(type='Pretrained',
                                                                   checkpoint=str(path))))
    model.init_weights()
    own = model.state_dict()
    assert set(own) == set(state) - {'norm.weight', 'norm.bias', 'head.weight', 'head.bias'}
    assert all(torch.equal(own[k], state[k]) for k in own)
    for handler in logger.handlers:
        handler.flush()
    log = (tmp_path / 'log.txt').read_text()
    assert 'skipped the classifier keys head.bias, head.weight, norm.bias, norm.weight' in log


def test_detector_checkpoint_with_prefix_loads(tmp_path):
    state = authors_checkpoint(tmp_path / 'net.pth')
    wrapped = {'state_dict': {f'backbone.{k}': v for k, v in state.items()},
               'meta': {'note': 'an mmengine-style checkpoint of a whole detector'}}
    torch.save(wrapped, tmp_path / 'detector.pth')
    model = EMO('1m', init_cfg=dict(type='Pretrained', checkpoint=str(tmp_path / 'detector.pth'),
                                    prefix='backbone.'))
    model.init_weights()
    assert torch.equal(model.stage3[1].qk.conv.weight, state['stage3.1.qk.conv.weight'])


def test_checkpoint_of_another_arch_names_the_shapes(tmp_path):
    authors_checkpoint(tmp_path / 'net.pth', arch='1m')
    model = EMO('2m')
    with pytest.raises(ValueError) as error:
        model.load_pretrained(str(tmp_path / 'net.pth'))
    message = str(error.value)
    assert 'does not fit this EMO backbone' in message
    assert 'shape mismatches' in message
    assert 'stage3.1.v.conv.weight: checkpoint (240, 80, 1, 1) vs model (360, 120, 1, 1)' \
        in message
    assert 'stage2.1.v.conv.weight' not in message  # same shape in both archs: not reported
    assert '41 missing keys: stage1.2.' in message  # 2M has one more block per stage


def test_checkpoint_with_missing_and_unexpected_keys_is_refused(tmp_path):
    state = authors_checkpoint(tmp_path / 'net.pth')
    del state['stage3.1.qk.conv.bias']
    state['stage5.0.extra.weight'] = torch.zeros(1)
    torch.save(state, tmp_path / 'bad.pth')
    with pytest.raises(ValueError, match=r"1 missing keys: stage3\.1\.qk\.conv\.bias; "
                                         r"1 unexpected keys: stage5\.0\.extra\.weight"):
        EMO('1m').load_pretrained(str(tmp_path / 'bad.pth'))


def test_missing_checkpoint_file_is_reported(tmp_path):
    with pytest.raises(FileNotFoundError, match='nowhere.pth'):
        EMO('1m').load_pretrained(str(tmp_path / 'nowhere.pth'))


# ------------------------------------------------- mmengine checkpoints, safely on every torch
RUNNER_SCRIPT = textwrap.dedent('''
    import sys, torch
    from torch import nn
    from mmengine.model import BaseModel
    from mmengine.runner import Runner

    class Tiny(BaseModel):
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(2, 1)

        def forward(self, inputs, data_samples=None, mode='loss'):
            return dict(loss=(self.linear(torch.stack(inputs)) - 1).pow(2).mean())

    data = [dict(inputs=torch.randn(2)) for _ in range(8)]
    runner = Runner(
        model=Tiny(), work_dir=sys.argv[1],
        train_dataloader=dict(dataset=data, batch_size=2, collate_fn=dict(type='pseudo_collate'),
                              sampler=dict(type='DefaultSampler', shuffle=True)),
        optim_wrapper=dict(optimizer=dict(type='AdamW', lr=0.01)),
        param_scheduler=dict(type='LinearLR', start_factor=0.1, by_epoch=False, end=2),
        train_cfg=dict(by_epoch=True, max_epochs=int(sys.argv[2])),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=1)),
        resume=sys.argv[3:] == ['resume'])
    runner.train()
''')


@pytest.fixture(scope='module')
def runner_checkpoint(tmp_path_factory) -> Path:
    work_dir = tmp_path_factory.mktemp('runner')
    subprocess.run([sys.executable, '-c', RUNNER_SCRIPT, str(work_dir), '1'], check=True,
                   capture_output=True)
    return work_dir / 'epoch_1.pth'


def load_in_fresh_python(path: Path, import_emo_mm: bool) -> subprocess.CompletedProcess:
    code = ('import emo_mm\n' if import_emo_mm else '') + textwrap.dedent(f'''
        from mmengine.runner import load_checkpoint, CheckpointLoader
        checkpoint = CheckpointLoader.load_checkpoint({str(path)!r}, map_location='cpu')
        print(sorted(checkpoint), checkpoint['message_hub']['log_scalars']['train/loss'].data[0].size)
    ''')
    return subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)


@pytest.mark.slow
def test_runner_checkpoint_loads_through_mmengine_with_emo_mm(runner_checkpoint):
    """Without emo_mm, torch >= 2.6 refuses mmengine's own checkpoint (older torch loads it
    with unrestricted pickle); with emo_mm it loads, safely, on both."""
    if TORCH_VERSION >= (2, 6):
        without = load_in_fresh_python(runner_checkpoint, import_emo_mm=False)
        assert without.returncode != 0 and 'Weights only load failed' in without.stderr
    with_fix = load_in_fresh_python(runner_checkpoint, import_emo_mm=True)
    assert with_fix.returncode == 0, with_fix.stderr
    assert "['message_hub', 'meta', 'optimizer', 'param_schedulers', 'state_dict']" \
        in with_fix.stdout


@pytest.mark.slow
def test_runner_checkpoint_holds_the_logging_state(runner_checkpoint):
    from emo_mm.checkpoint_io import load_weights_only
    checkpoint = load_weights_only(str(runner_checkpoint))
    buffer = checkpoint['message_hub']['log_scalars']['train/loss']
    assert isinstance(buffer, HistoryBuffer) and buffer.data[0].size > 0
    assert buffer.statistics('mean') == pytest.approx(buffer.mean())


@pytest.mark.slow
def test_runner_resumes_from_its_checkpoint(runner_checkpoint, tmp_path):
    """mmengine's own --resume path, with emo_mm imported through custom_imports."""
    work_dir = runner_checkpoint.parent
    script = 'import emo_mm\n' + RUNNER_SCRIPT
    done = subprocess.run([sys.executable, '-c', script, str(work_dir), '2', 'resume'],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert 'resumed epoch: 1, iter: 4' in done.stdout + done.stderr
    assert (work_dir / 'epoch_2.pth').exists()


class RunsCode:
    """Unpickling this would run a shell command."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f'touch {self.marker}', )


class LooksUpAttributes:
    """Unpickling this would call getattr on an arbitrary allowed object."""

    def __reduce__(self):
        return getattr, (HistoryBuffer, '__init__')


def _mmengine_load_checkpoint(path: str):
    from mmengine.runner import CheckpointLoader
    return CheckpointLoader.load_checkpoint(path, map_location='cpu')


def _mmengine_runner_load(path: str):
    from mmengine.runner import load_checkpoint
    return load_checkpoint(torch.nn.Linear(1, 1), path, map_location='cpu')


# Every door through which a checkpoint file is read: emo_mm's own, and mmengine's (--resume,
# load_from, init_detector / init_model, tools/test.py) once emo_mm is imported.
LOAD_DOORS = {'load_weights_only': lambda path: load_weights_only(path),
              'read_checkpoint': lambda path: read_checkpoint(path),
              'CheckpointLoader': _mmengine_load_checkpoint,
              'mmengine load_checkpoint': _mmengine_runner_load}


@pytest.mark.parametrize('door', LOAD_DOORS)
def test_code_running_pickle_is_refused_on_every_torch(tmp_path, door):
    marker = tmp_path / 'pwned'
    torch.save({'state_dict': {}, 'payload': RunsCode(marker)}, tmp_path / 'evil.pth')
    with pytest.raises((pickle.UnpicklingError, CheckpointError), match='system'):
        LOAD_DOORS[door](str(tmp_path / 'evil.pth'))
    assert not marker.exists()


@pytest.mark.slow
def test_loading_leaves_the_global_allow_list_as_it_was(runner_checkpoint):
    """Reading a checkpoint adds its allow-list for that read only, and keeps what
    ``import emo_mm`` allowed for every torch.load (torch >= 2.6: mmengine's checkpoints)."""
    before = torch.serialization.get_safe_globals() if TORCH_VERSION >= (2, 4) else None
    load_weights_only(str(runner_checkpoint))
    read_checkpoint(str(runner_checkpoint))
    if before is not None:
        assert torch.serialization.get_safe_globals() == before
    if TORCH_VERSION >= (2, 6):
        assert 'message_hub' in torch.load(runner_checkpoint)


def test_getattr_is_allowed_only_for_history_buffer_statistics(tmp_path):
    torch.save({'payload': LooksUpAttributes()}, tmp_path / 'getattr.pth')
    with pytest.raises(pickle.UnpicklingError, match=r"refusing getattr\(.*'__init__'\)"):
        load_weights_only(str(tmp_path / 'getattr.pth'))


def test_the_restricted_unpickler_rebuilds_tensors_and_refuses_other_globals(tmp_path):
    """The path of torch < 2.5, tested on every torch: tensors, parameters, containers and
    the allow-list come back equal; any other global is refused by name."""
    from emo_mm.checkpoint_io import allowed_globals, restricted_pickle_module
    from emo_mm.compat import mmengine_checkpoint_globals
    state = {'w': torch.randn(3, 2), 'p': torch.nn.Parameter(torch.ones(2)),
             'i': torch.arange(4), 'half': torch.ones(2, dtype=torch.float16),
             'nested': [(1, 'a'), {'b': 2.5}], 'buffer': HistoryBuffer()}
    for value in (1.0, 2.0):
        state['buffer'].update(value)
    torch.save(state, tmp_path / 'ok.pth')
    allowed = allowed_globals(mmengine_checkpoint_globals())
    loaded = torch.load(tmp_path / 'ok.pth', weights_only=False,
                        pickle_module=restricted_pickle_module(allowed))
    for key in ('w', 'p', 'i', 'half'):
        assert torch.equal(loaded[key], state[key]) and loaded[key].dtype == state[key].dtype
    assert isinstance(loaded['p'], torch.nn.Parameter) and loaded['nested'] == state['nested']
    assert loaded['buffer'].mean() == 1.5
    torch.save({'payload': RunsCode(tmp_path / 'pwned')}, tmp_path / 'evil.pth')
    with pytest.raises(pickle.UnpicklingError, match='GLOBAL posix.system'):
        torch.load(tmp_path / 'evil.pth', weights_only=False,
                   pickle_module=restricted_pickle_module(allowed))
    assert not (tmp_path / 'pwned').exists()


# ------------------------------------------- downloads and files a user can get wrong
@pytest.fixture
def checkpoint_server(tmp_path, monkeypatch):
    """An HTTP server on the loopback interface serving ``tmp_path/served``, and a fresh torch
    hub cache: downloads are tested as a user meets them, without the internet."""
    import functools
    import http.server
    import threading
    served = tmp_path / 'served'
    served.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setattr(torch.hub, '_hub_dir', str(tmp_path / 'torch_home' / 'hub'))
    yield served, f'http://127.0.0.1:{server.server_address[1]}'
    server.shutdown()
    server.server_close()


def test_variants_with_the_same_file_name_are_cached_apart(checkpoint_server):
    """The authors' URLs all end in net.pth: each variant must still get its own weights."""
    served, base = checkpoint_server
    states = {}
    for arch in ('1m', '2m'):
        (served / f'EMO_{arch.upper()}').mkdir()
        states[arch] = authors_checkpoint(served / f'EMO_{arch.upper()}' / 'net.pth', arch)
    for arch in ('1m', '2m', '1m'):  # the second 1m load reads the cache
        model = EMO(arch, init_cfg=dict(type='Pretrained',
                                        checkpoint=f'{base}/EMO_{arch.upper()}/net.pth'))
        model.init_weights()
        assert torch.equal(model.stage4[0].proj.conv.weight,
                           states[arch]['stage4.0.proj.conv.weight'])
    cached = sorted(p.name for p in Path(pretrained.cache_dir()).iterdir())
    assert len(cached) == 2 and cached[0].startswith('EMO_1M-net-') and \
        cached[1].startswith('EMO_2M-net-'), cached


def test_stale_download_names_the_cached_file_and_how_to_clear_it(checkpoint_server):
    served, base = checkpoint_server
    (served / 'EMO_2M').mkdir()
    url = f'{base}/EMO_2M/net.pth'
    cached = Path(pretrained.cache_dir()) / pretrained.cache_file_name(url)
    cached.parent.mkdir(parents=True)
    authors_checkpoint(cached, '1m')  # e.g. left there by an older emo-mm or by hand
    with pytest.raises(pretrained.CheckpointError) as error:
        EMO('2m').load_pretrained(url)
    assert f'{url} (read from {cached})' in str(error.value)
    assert f'If {cached} is a stale or wrong download, delete it' in str(error.value)


def test_offline_download_fails_in_one_line_saying_how_to_pass_a_file(checkpoint_server):
    _, base = checkpoint_server
    url = 'http://127.0.0.1:{}/EMO_1M/net.pth'.format(free_port())  # nothing listens there
    with pytest.raises(pretrained.CheckpointError) as error:
        EMO('1m').load_pretrained(url)
    message = str(error.value)
    assert message.startswith(f'could not download the checkpoint {url}') and '\n' not in message
    assert '--cfg-options model.backbone.init_cfg.checkpoint=/path/to/net.pth' in message
    assert error.value.__cause__ is None and error.value.__suppress_context__  # no urllib pages
    assert not any(Path(pretrained.cache_dir()).glob('*'))  # no half file left to be reused


@pytest.mark.parametrize('content,expected', [
    (b'', 'is empty (0 bytes)'),
    (b'\x8a\x01 random bytes that are no checkpoint', 'is not a PyTorch checkpoint'),
    (b'PK\x03\x04 a truncated zip archive', 'is not a readable PyTorch checkpoint'),
])
def test_unreadable_files_are_named_without_unsafe_advice(tmp_path, content, expected):
    path = tmp_path / 'net.pth'
    path.write_bytes(content)
    with pytest.raises(pretrained.CheckpointError) as error:
        EMO('1m').load_pretrained(str(path))
    assert str(path) in str(error.value) and expected in str(error.value)
    assert 'weights_only=False' not in str(error.value)


def test_a_pickle_torch_refuses_is_explained_not_loaded(tmp_path):
    marker = tmp_path / 'pwned'
    torch.save({'state_dict': {}, 'payload': RunsCode(marker)}, tmp_path / 'evil.pth')
    with pytest.raises(pretrained.CheckpointError, match='refuses to rebuild') as error:
        EMO('1m').load_pretrained(str(tmp_path / 'evil.pth'))
    assert 'does not turn the safety off' in str(error.value) and not marker.exists()


def test_non_checkpoint_and_missing_checkpoint_setting_are_refused(tmp_path):
    torch.save([1, 2, 3], tmp_path / 'list.pth')
    with pytest.raises(pretrained.CheckpointError, match='holds a list, not a checkpoint dict'):
        EMO('1m').load_pretrained(str(tmp_path / 'list.pth'))
    with pytest.raises(pretrained.CheckpointError, match='needs a checkpoint path or URL'):
        EMO('1m', init_cfg=dict(type='Pretrained')).init_weights()


def test_timm_style_checkpoint_takes_state_dict_or_the_named_key(tmp_path):
    import argparse
    state = authors_checkpoint(tmp_path / 'net.pth')
    ema = {k: v + 1 if v.is_floating_point() else v for k, v in state.items()}
    torch.save({'state_dict': state, 'state_dict_ema': ema, 'epoch': 3,
                'args': argparse.Namespace(model='emo_1m', lr=1e-3)}, tmp_path / 'timm.pth')
    model = EMO('1m')
    model.load_pretrained(str(tmp_path / 'timm.pth'))
    assert torch.equal(model.stage1[0].v.conv.weight, state['stage1.0.v.conv.weight'])
    pretrained.load_pretrained(model, str(tmp_path / 'timm.pth'), state_key='state_dict_ema')
    assert torch.equal(model.stage1[0].v.conv.weight, ema['stage1.0.v.conv.weight'])
    with pytest.raises(pretrained.CheckpointError, match="has no 'ema'; its keys are args, "):
        pretrained.load_pretrained(model, str(tmp_path / 'timm.pth'), state_key='ema')
