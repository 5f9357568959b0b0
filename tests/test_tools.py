"""emo_mm.runtime, the logic behind tools/*.py: framework choice, CPU adaptation, data checks."""
import subprocess
from pathlib import Path

import pytest
import torch
from mmengine.config import Config

from emo_mm import runtime

REPO = Path(__file__).resolve().parents[1]


def make_config(tmp_path: Path, text: str) -> Config:
    path = tmp_path / 'cfg.py'
    path.write_text(text)
    return Config.fromfile(str(path))


def test_unknown_default_scope_names_the_valid_ones(tmp_path):
    cfg = make_config(tmp_path, "default_scope = 'mmpretrain'\n")
    with pytest.raises(ValueError, match=r"'mmpretrain'.*\['mmdet', 'mmseg'\]"):
        runtime.framework_of(cfg)


def test_missing_config_and_bad_launcher(tmp_path):
    with pytest.raises(FileNotFoundError, match='nope.py'):
        runtime.load_config(str(tmp_path / 'nope.py'))
    (tmp_path / 'cfg.py').write_text("default_scope = 'mmseg'\n")
    with pytest.raises(ValueError, match="launcher must be one of .*'slurm'"):
        runtime.load_config(str(tmp_path / 'cfg.py'), launcher='torchrun')


@pytest.mark.skipif(torch.cuda.is_available(), reason='checks the CPU fallbacks')
def test_cpu_adaptation_replaces_sync_bn_and_ddp_device_ids(tmp_path):
    cfg = make_config(tmp_path, (
        "default_scope = 'mmseg'\nsync_bn = 'torch'\n"
        "model = dict(backbone=dict(norm_cfg=dict(type='SyncBN', eps=1e-6)),\n"
        "             heads=[dict(norm_cfg=dict(type='MMSyncBN')), dict(norm_cfg=dict(type='GN'))])\n"))
    cfg.launcher = 'pytorch'
    runtime.adapt_to_cpu(cfg)
    assert cfg.model.backbone.norm_cfg == dict(type='BN', eps=1e-6)
    assert [h.norm_cfg.type for h in cfg.model.heads] == ['BN', 'GN']
    assert 'sync_bn' not in cfg
    assert cfg.env_cfg.dist_cfg.backend == 'gloo'
    assert cfg.model_wrapper_cfg.type == 'MMDistributedDataParallel'
    assert cfg.model_wrapper_cfg.device_ids is None


def test_data_check_walks_wrapped_datasets_and_evaluators(tmp_path):
    (tmp_path / 'root' / 'imgs').mkdir(parents=True)
    cfg = make_config(tmp_path, f"""default_scope = 'mmseg'
train_dataloader = dict(dataset=dict(type='RepeatDataset', dataset=dict(
    data_root='{tmp_path}/root', ann_file='', data_prefix=dict(img_path='imgs', seg_map_path='ann'))))
val_cfg = dict(type='ValLoop')
val_dataloader = dict(dataset=dict(data_root='{tmp_path}/gone', ann_file='a.json'))
val_evaluator = [dict(type='X', ann_file='{tmp_path}/gone/b.json')]
""")
    assert [key for key, _ in runtime.missing_data_paths(cfg, 'train')] == [
        'train_dataloader.dataset.dataset.data_prefix.seg_map_path',
        'val_dataloader.dataset.data_root', 'val_dataloader.dataset.ann_file',
        'val_evaluator.ann_file']
    assert runtime.missing_data_paths(cfg, 'test') == []
    with pytest.raises(FileNotFoundError, match=f'{tmp_path}/root/ann'):
        runtime.check_data_paths(cfg, 'train')
    with pytest.raises(ValueError, match="run must be one of \\['test', 'train'\\]"):
        runtime.missing_data_paths(cfg, 'val')


def test_dist_scripts_print_usage():
    for script, usage in (('dist_train.sh', 'CONFIG NPROC'), ('dist_test.sh', 'CONFIG CHECKPOINT NPROC')):
        proc = subprocess.run([str(REPO / 'tools' / script)], capture_output=True, text=True)
        assert proc.returncode == 2 and usage in proc.stderr
