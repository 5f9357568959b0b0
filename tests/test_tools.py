"""The library behind tools/*.py (framework choice, CPU adaptation, data checks) and the errors
a user of the tools meets: said once, in one line, before the Runner's start-up logs."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import CONFIGS, REPO, TOOLS, free_port, load_tool, python_tool, run_tool
from mmengine.config import Config

from emo_mm import config_options
from emo_mm.datasets import preflight
from emo_mm.datasets.tiny_ade import make_tiny_ade
from emo_mm.engine import cpu_distributed

TINY_DEEPLAB = CONFIGS / 'deeplabv3' / 'emo_1m_tiny.py'
# What mmengine's Runner prints first: an error must come before it (or instead of it).
RUNNER_START = 'System environment'


def make_config(tmp_path: Path, text: str) -> Config:
    path = tmp_path / 'cfg.py'
    path.write_text(text)
    return Config.fromfile(str(path))


def test_what_every_tool_imports_first_loads_no_framework():
    """The tools start by importing emo_mm's command-line and error helpers (emo_mm.cli,
    emo_mm.deploy for DeployError, the runner); none of that imports mmdet, mmseg or
    onnxruntime, so a tool loads only the framework its config names, when it reads it (the
    models of a framework cost seconds of every tool start). Counted beyond what mmengine's
    runner loads by itself (on torch 2.1 its import of torch.onnx loads onnx)."""
    code = ('import sys; frameworks = lambda: {name for name in sys.modules if name.split(".")[0] '
            'in ("mmdet", "mmseg", "onnx", "onnxruntime")}; import mmengine.runner; '
            'before = frameworks(); import emo_mm, emo_mm.cli, emo_mm.deploy, '
            'emo_mm.engine.runner; loaded = sorted(frameworks() - before); '
            'assert not loaded, loaded')
    subprocess.run([sys.executable, '-c', code], cwd=REPO, check=True, timeout=300)


def test_unknown_default_scope_names_the_valid_ones(tmp_path):
    cfg = make_config(tmp_path, "default_scope = 'mmpretrain'\n")
    with pytest.raises(config_options.ConfigError, match=r"'mmpretrain'.*\['mmdet', 'mmseg'\]"):
        config_options.framework_of(cfg)


def test_missing_config_and_bad_launcher(tmp_path):
    with pytest.raises(FileNotFoundError, match='nope.py'):
        config_options.load_config(str(tmp_path / 'nope.py'))
    (tmp_path / 'cfg.py').write_text("default_scope = 'mmseg'\n")
    with pytest.raises(config_options.ConfigError, match="launcher must be one of .*'slurm'"):
        config_options.load_config(str(tmp_path / 'cfg.py'), launcher='torchrun')


def test_cpu_adaptation_replaces_sync_bn_and_ddp_device_ids(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)  # also on a GPU machine
    cfg = make_config(tmp_path, (
        "default_scope = 'mmseg'\nsync_bn = 'torch'\n"
        "model = dict(backbone=dict(norm_cfg=dict(type='SyncBN', eps=1e-6)),\n"
        "             heads=[dict(norm_cfg=dict(type='MMSyncBN')), dict(norm_cfg=dict(type='GN'))])\n"))
    cfg.launcher = 'pytorch'
    cpu_distributed.adapt_to_cpu(cfg)
    assert cfg.model.backbone.norm_cfg == dict(type='BN', eps=1e-6)
    assert [h.norm_cfg.type for h in cfg.model.heads] == ['BN', 'GN']
    assert 'sync_bn' not in cfg
    assert cfg.env_cfg.dist_cfg.backend == 'gloo'
    assert cfg.model_wrapper_cfg.type == 'MMDistributedDataParallel'
    assert cfg.model_wrapper_cfg.device_ids is None
    assert cfg.custom_hooks == [dict(type='AverageBatchNormStatsHook')]
    single = make_config(tmp_path, "default_scope = 'mmseg'\n"
                         "model = dict(norm_cfg=dict(type='SyncBN'))\n")
    single.launcher = 'none'
    cpu_distributed.adapt_to_cpu(single)
    assert single.model.norm_cfg.type == 'BN' and 'custom_hooks' not in single


def test_gpu_runs_keep_sync_bn_nccl_and_device_ids(tmp_path, monkeypatch):
    """With GPUs, mmengine's own set-up is left alone: SyncBN, its backend, DDP device_ids."""
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    cfg = make_config(tmp_path, "default_scope = 'mmseg'\nsync_bn = 'torch'\n"
                      "model = dict(backbone=dict(norm_cfg=dict(type='SyncBN')))\n")
    cfg.launcher = 'pytorch'
    before = cfg.to_dict()
    cpu_distributed.adapt_to_cpu(cfg)
    assert cfg.to_dict() == before


@pytest.mark.parametrize('gpus,processes,refused', [(1, 2, True), (2, 2, False), (8, 8, False),
                                                    (0, 4, False)])
def test_two_processes_never_share_a_gpu(monkeypatch, gpus, processes, refused):
    from emo_mm.engine.devices import check_one_gpu_per_process
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: gpus > 0)
    monkeypatch.setattr(torch.cuda, 'device_count', lambda: gpus)
    monkeypatch.setenv('LOCAL_WORLD_SIZE', str(processes))
    if refused:
        with pytest.raises(config_options.ConfigError,
                           match=r'^2 processes per machine but 1 visible GPU: .* at most 1 '
                           r'\(e\.g\. tools/dist_train\.sh CONFIG 1\), or run on the CPU on '
                           r'purpose with CUDA_VISIBLE_DEVICES='):
            check_one_gpu_per_process()
    else:
        check_one_gpu_per_process()


def test_dist_train_checks_the_devices_for_its_process_count_before_starting(tmp_path):
    """dist_train.sh hands NPROC to its one-process check (LOCAL_WORLD_SIZE), which refuses
    more processes than GPUs; here a stand-in python records what the check was given."""
    fake = tmp_path / 'python'
    fake.write_text('#!/bin/sh\necho "LOCAL_WORLD_SIZE=$LOCAL_WORLD_SIZE $*" >> "$0.log"\n'
                    'exit 3\n')
    fake.chmod(0o755)
    for script, args in (('dist_train.sh', ['cfg.py', '4']),
                         ('dist_test.sh', ['cfg.py', 'ckpt.pth', '4'])):
        run_tool(['bash', TOOLS / script, *args], cwd=tmp_path, env=dict(PYTHON=str(fake)),
                 expect_ok=False)
    calls = (tmp_path / 'python.log').read_text().splitlines()
    assert len(calls) == 2 and all(call.startswith('LOCAL_WORLD_SIZE=4 ') and
                                   '--preflight' in call for call in calls), calls


def test_demo_leaves_gpus_unused_on_purpose_and_says_so(monkeypatch):
    demo = load_tool('demo')
    monkeypatch.setattr(torch.cuda, 'device_count', lambda: 2)
    monkeypatch.setenv('CUDA_VISIBLE_DEVICES', '0,1')
    line = demo.run_on_cpu()
    assert os.environ['CUDA_VISIBLE_DEVICES'] == ''
    assert line.startswith('demo: on CPU on purpose (2 GPUs left unused') and '\n' not in line


def test_data_check_walks_wrapped_datasets_and_evaluators(tmp_path):
    (tmp_path / 'root' / 'imgs').mkdir(parents=True)
    cfg = make_config(tmp_path, f"""default_scope = 'mmseg'
train_dataloader = dict(dataset=dict(type='RepeatDataset', dataset=dict(
    data_root='{tmp_path}/root', ann_file='', data_prefix=dict(img_path='imgs', seg_map_path='ann'))))
val_cfg = dict(type='ValLoop')
val_dataloader = dict(dataset=dict(data_root='{tmp_path}/gone', ann_file='a.json'))
val_evaluator = [dict(type='X', ann_file='{tmp_path}/gone/b.json')]
""")
    assert [key for key, _ in preflight.missing_data_paths(cfg, 'train')] == [
        'train_dataloader.dataset.dataset.data_prefix.seg_map_path',
        'val_dataloader.dataset.data_root', 'val_dataloader.dataset.ann_file',
        'val_evaluator.ann_file']
    assert preflight.missing_data_paths(cfg, 'test') == []
    with pytest.raises(FileNotFoundError, match=f'{tmp_path}/root/ann'):
        preflight.check_data_paths(cfg, 'train')
    with pytest.raises(ValueError, match="run must be one of \\['test', 'train'\\]"):
        preflight.missing_data_paths(cfg, 'val')


def test_dist_scripts_print_usage(tmp_path):
    for script, usage in (('dist_train.sh', 'CONFIG NPROC'),
                          ('dist_test.sh', 'CONFIG CHECKPOINT NPROC')):
        output = run_tool([TOOLS / script], cwd=tmp_path, expect_ok=False)
        assert usage in output


@pytest.mark.parametrize('nproc', ('0', '-1', 'two', '1.5', ''))
def test_dist_scripts_refuse_a_bad_process_count(tmp_path, nproc):
    for script, args in (('dist_train.sh', [TINY_DEEPLAB, nproc]),
                         ('dist_test.sh', [TINY_DEEPLAB, 'x.pth', nproc])):
        output = run_tool([TOOLS / script, *args], cwd=tmp_path, expect_ok=False)
        assert output.startswith('error: NPROC') and f"got '{nproc}'" in output, output
        assert 'Traceback' not in output and len(output.splitlines()) == 1


@pytest.mark.slow
def test_missing_dataset_under_dist_train_is_said_once(tmp_path):
    output = run_tool([TOOLS / 'dist_train.sh', TINY_DEEPLAB, '2'], cwd=tmp_path,
                      env=dict(PORT=str(free_port())), expect_ok=False)
    assert output.count('reads dataset paths that do not exist') == 1, output
    assert output.startswith('error: ') and 'data/tiny_ade' in output
    assert 'Traceback' not in output and 'ChildFailedError' not in output
    assert RUNNER_START not in output and not (tmp_path / 'work_dirs').exists()


# ------------------------------------------------------------ checkpoints given to tools/test.py
@pytest.fixture(scope='module')
def tiny_ade_cwd(tmp_path_factory) -> Path:
    cwd = tmp_path_factory.mktemp('tools_cwd')
    make_tiny_ade(cwd / 'data' / 'tiny_ade', num_train=2, num_val=2)
    return cwd


def write_checkpoint(path: Path, kind: str) -> Path:
    if kind == 'empty':
        path.write_bytes(b'')
    elif kind == 'corrupt':
        path.write_bytes(bytes(range(256)) * 4)
    elif kind == 'not a checkpoint':
        torch.save({'hello': 'world'}, path)
    elif kind == 'another model':  # an EMO-2M segmentor checkpoint for an EMO-1M config
        from mmengine.registry import init_default_scope
        from mmseg.registry import MODELS
        init_default_scope('mmseg')
        cfg = Config.fromfile(str(CONFIGS / 'deeplabv3' / 'emo_2m.py'))
        cfg.model.backbone.norm_cfg = dict(type='BN')
        torch.save({'state_dict': MODELS.build(cfg.model).state_dict()}, path)
    return path


@pytest.mark.parametrize('kind,message', [
    ('empty', 'is empty (0 bytes)'),
    ('corrupt', 'is not a PyTorch checkpoint'),
    ('not a checkpoint', 'holds no state_dict of tensors'),
    ('another model', 'does not fit the model of'),
    ('missing', 'checkpoint file not found'),
])
@pytest.mark.slow
def test_bad_checkpoints_fail_in_one_line_before_the_runner_starts(tiny_ade_cwd, tmp_path,
                                                                   kind, message):
    checkpoint = write_checkpoint(tmp_path / 'model.pth', kind)
    output = run_tool(python_tool('test.py', TINY_DEEPLAB, checkpoint), cwd=tiny_ade_cwd,
                      expect_ok=False)
    errors = [line for line in output.splitlines() if line.startswith('error: ')]
    assert len(errors) == 1 and message in errors[0] and str(checkpoint) in errors[0], output
    assert RUNNER_START not in output and 'Traceback' not in output
    assert 'weights_only=False' not in output  # torch's unsafe advice is never passed on


def test_another_models_checkpoint_names_the_mismatched_keys(tmp_path):
    from emo_mm.engine.runner import check_checkpoint_fits
    from emo_mm.models.backbones.pretrained import CheckpointError
    checkpoint = write_checkpoint(tmp_path / 'model.pth', 'another model')
    cfg = Config.fromfile(str(TINY_DEEPLAB))
    with pytest.raises(CheckpointError) as error:
        check_checkpoint_fits(cfg, str(checkpoint))
    assert 'backbone.stage1.2.' in str(error.value)  # 2M has a third block in stage 1
    assert 'shape mismatches' in str(error.value)


# --------------------------------------------------------------- what the console shows
def test_training_console_shows_progress_not_the_environment(learned_deeplabv3):
    """The console of the demo's tools/dist_train.sh run (both processes): progress and metrics;
    the environment and config dumps only in the log file, which the console names."""
    work = learned_deeplabv3.work_dir
    output = (work / 'train.log').read_text()
    assert 'Iter(train) [200/200]' in output and 'mIoU' in output
    assert RUNNER_START not in output and 'Config:' not in output
    log_files = [p for p in work.glob('*/*.log') if p.stem == p.parent.name]
    assert len(log_files) == 1 and f'full log: {log_files[0]}' in output
    log = log_files[0].read_text()
    assert RUNNER_START in log and 'Config:' in log and 'Iter(train) [200/200]' in log
    assert 'pkg_resources is deprecated' not in output


@pytest.mark.slow
def test_scratch_training_with_frozen_batchnorm_statistics_warns(tiny_ade_cwd):
    output = run_tool(python_tool('train.py', TINY_DEEPLAB, '--preflight', '--cfg-options',
                                  'model.backbone.norm_eval=True'), cwd=tiny_ade_cwd)
    assert 'norm_eval=True but no pretrained weights' in output
    assert 'model.backbone.norm_eval=False' in output
    quiet = run_tool(python_tool('train.py', TINY_DEEPLAB, '--preflight'), cwd=tiny_ade_cwd)
    assert 'norm_eval' not in quiet


def test_amp_on_cpu_is_refused_in_one_line_because_mmengine_refuses(tmp_path, monkeypatch):
    """--amp on a machine without a GPU: one line saying why. The reason is checked too:
    mmengine's AmpOptimWrapper itself refuses to be built without a GPU (when it learns CPU
    bfloat16, this test fails and --amp can be allowed on CPU)."""
    from mmengine.optim import AmpOptimWrapper
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    monkeypatch.setattr('mmengine.optim.optimizer.amp_optimizer_wrapper.is_cuda_available',
                        lambda: False)
    with pytest.raises(AssertionError, match='only available training on gpu'):
        AmpOptimWrapper(optimizer=torch.optim.SGD(torch.nn.Linear(2, 2).parameters(), lr=0.1),
                        dtype='bfloat16')
    cfg = make_config(tmp_path, "default_scope = 'mmdet'\noptim_wrapper = dict()\n")
    with pytest.raises(config_options.ConfigError) as error:
        config_options.apply_train_options(cfg, amp=True)
    message = str(error.value)
    assert '\n' not in message and message.startswith('--amp needs a CUDA GPU: mmengine') \
        and 'refuses to run on CPU' in message
