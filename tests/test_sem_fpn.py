"""Semantic FPN on ADE20K with EMO and EfficientMod: the configs against the
EfficientMod paper's recipe (its warm-up + cosine schedule included) and the exact parameter
counts, FLOPs, and the real tools (train, 2-process CPU training, test with mIoU) and inference
APIs on the tiny ADE20K-format dataset and a real photo.

The runs through the tools share one short training (2 iterations, then an evaluation) of the
tiny config, made once per module in a temporary folder.
"""
import math
import re
import shutil
from pathlib import Path
from typing import List

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

import emo_mm  # noqa: F401
from conftest import (CONFIGS, REPO, build_segmentor, check_variant_backbone, free_port,
                      python_tool, run_tool)
from emo_mm.datasets.preflight import missing_data_paths
from emo_mm.analysis import default_input_shape, model_complexity
from emo_mm.datasets.tiny_ade import CLASSES, make_tiny_ade

FAMILY = CONFIGS / 'sem_fpn'
# The whole model (150 classes), from the official backbones in mmseg's heads.
PARAMS = {'emo_1m': 5_280_302, 'emo_2m': 6_282_974, 'emo_5m': 8_969_182,
          'efficientmod_s': 16_729_374, 'efficientmod_s_conv': 16_690_894}
EMO = {'emo_1m': ('1m', 7, 0.04036), 'emo_2m': ('2m', 7, 0.05), 'emo_5m': ('5m', 16, 0.05)}
TINY = FAMILY / 'emo_1m_tiny.py'
PHOTO = REPO / 'demo' / 'coffee.jpg'
# What the tools print for IoUMetric.
MIOU = re.compile(r'aAcc: ([\d.]+)\s+mIoU: ([\d.]+)\s+mAcc: ([\d.]+)')


def config(name: str) -> Config:
    return Config.fromfile(str(FAMILY / f'{name}.py'))


def miou(output: str) -> List[float]:
    """aAcc, mIoU, mAcc of the last IoUMetric line of a tool's log."""
    found = MIOU.findall(output)
    assert found, f'no IoUMetric figures in the output:\n{output[-3000:]}'
    return [float(v) for v in found[-1]]


# ------------------------------------------------------------------------ configs and recipe
@pytest.mark.parametrize('name', PARAMS)
def test_config_builds_with_the_exact_parameter_count(name):
    cfg = config(name)
    check_variant_backbone(cfg, name, FAMILY / f'{name}.py', EMO)
    model = build_segmentor(cfg).eval()
    assert model.decode_head.num_classes == 150 and not model.with_auxiliary_head
    assert sum(p.numel() for p in model.parameters()) == PARAMS[name]
    # The FPN takes exactly the backbone's four maps (the official configs swap s and s_conv).
    with torch.no_grad():
        features = model.backbone(torch.randn(1, 3, 64, 64))
    assert [f.shape[1] for f in features] == list(cfg.model.neck.in_channels)
    assert [f.shape[-1] for f in features] == [16, 8, 4, 2]


def test_the_recipe_is_the_efficientmod_papers():
    cfg = config('emo_1m')
    assert cfg.default_scope == 'mmseg' and cfg.custom_hooks == [dict(type='RNGStateHook')]
    assert cfg.optim_wrapper.optimizer == dict(type='AdamW', lr=2e-4, betas=(0.9, 0.999),
                                               weight_decay=1e-4)
    assert 'paramwise_cfg' not in cfg.optim_wrapper and not cfg.optim_wrapper.get('clip_grad')
    assert (cfg.train_cfg.max_iters, cfg.train_cfg.val_interval) == (40000, 4000)
    assert cfg.train_dataloader.batch_size == 4 and cfg.auto_scale_lr.base_batch_size == 32
    crop = [t for t in cfg.train_dataloader.dataset.pipeline if t.type == 'RandomCrop'][0]
    assert tuple(crop.crop_size) == tuple(cfg.model.data_preprocessor.size) == (512, 512)
    assert default_input_shape(str(FAMILY / 'emo_1m.py')) == (512, 512)
    assert 'test_pipeline' in cfg  # mmseg's inference_model reads it
    neck, head = cfg.model.neck, cfg.model.decode_head
    assert (neck.type, neck.out_channels, neck.num_outs) == ('FPN', 256, 4)
    assert (head.type, head.in_channels, head.channels, head.dropout_ratio, head.num_classes) == (
        'FPNHead', [256] * 4, 128, 0.1, 150)
    assert cfg.model.get('pretrained') is None  # no ResNet checkpoint from mmseg's base
    assert cfg.model.backbone.norm_cfg == dict(type='SyncBN')  # EMO's BN trains (no norm_eval)


def test_the_schedule_is_warm_up_times_cosine():
    """mmcv 1.x's CosineAnnealing over all 40k iterations (min ratio 1e-6) with a linear
    1000-iteration warm-up from 0.1x, as the authors ran it, to 0.1% of the base lr."""
    from mmengine.registry import PARAM_SCHEDULERS
    init_default_scope('mmseg')
    cfg = config('efficientmod_s')
    base_lr = cfg.optim_wrapper.optimizer.lr
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=base_lr)
    schedulers = [PARAM_SCHEDULERS.build(dict(s, optimizer=optimizer))
                  for s in cfg.param_scheduler]
    checked = 0
    for i in range(40000):
        cosine = 1e-6 + (1 - 1e-6) * (1 + math.cos(math.pi * i / 40000)) / 2
        warm_up = 1 - (1 - i / 1000) * 0.9 if i < 1000 else 1
        if i % 250 == 0 or i in (999, 1000, 39999):
            lr = optimizer.param_groups[0]['lr']
            assert abs(lr - base_lr * cosine * warm_up) < 1e-3 * base_lr, i
            checked += 1
        optimizer.step()
        for scheduler in schedulers:
            scheduler.step()
    assert checked == 162


def test_emo_and_efficientmod_share_one_recipe():
    """Everything but the backbone and the FPN's input widths is the same in all five."""
    def rest(name: str) -> dict:
        cfg = config(name).to_dict()
        cfg['model'].pop('backbone'), cfg['model']['neck'].pop('in_channels')
        cfg.pop('checkpoint', None)  # EfficientMod's documented checkpoint path
        return cfg

    reference = rest('emo_1m')
    for name in PARAMS:
        assert rest(name) == reference, name


def test_data_root_is_set_in_one_place(tmp_path):
    common = (FAMILY / '_common.py').read_text()
    assert common.count("data_root = 'data/ade/ADEChallengeData2016'") == 1
    for path in FAMILY.glob('*.py'):
        shutil.copy(path, tmp_path)
    (tmp_path / '_common.py').write_text(common.replace(
        "data_root = 'data/ade/ADEChallengeData2016'", "data_root = '/elsewhere'"))
    for name in ('emo_5m', 'efficientmod_s_conv', 'emov2_5m'):
        cfg = Config.fromfile(str(tmp_path / f'{name}.py'))
        paths = [path for kind in ('train', 'test')
                 for _, path in missing_data_paths(cfg, kind)]
        assert paths and all(path.startswith('/elsewhere') for path in paths), paths


def test_flops_match_the_efficientmod_paper():
    """At 512x512 the module-hook counter gives the paper's 28.1G / 29.0G; the jit counter adds
    EfficientMod-s's global attention matmuls, which the hook counter does not see."""
    hybrid, conv = (model_complexity(str(FAMILY / f'{name}.py'), counters=('hook', ))
                    for name in ('efficientmod_s', 'efficientmod_s_conv'))
    assert hybrid.input_shape == conv.input_shape == (512, 512)
    assert (hybrid.params, conv.params) == (PARAMS['efficientmod_s'],
                                            PARAMS['efficientmod_s_conv'])
    assert round(hybrid.hook_flops / 1e9, 1) == 28.1 and round(conv.hook_flops / 1e9, 1) == 29.0
    small = model_complexity(str(FAMILY / 'efficientmod_s.py'), shape=(256, 256))
    # q @ k^T and attn @ v at 256x256: 4 blocks at stride 16 (256 tokens, 8 heads x 32
    # channels), 4 at stride 32 (64 tokens, 8 x 39)
    attention = 4 * 2 * 256 ** 2 * 256 + 4 * 2 * 64 ** 2 * 312
    assert small.jit_flops - small.hook_flops > 0.8 * attention


# ------------------------------------------------------------------------ tools
@pytest.fixture(scope='module')
def ade_cwd(tmp_path_factory) -> Path:
    """A directory holding data/tiny_ade (4 training, 2 validation images of 192x256)."""
    cwd = tmp_path_factory.mktemp('sem_fpn')
    make_tiny_ade(cwd / 'data' / 'tiny_ade', num_train=4, num_val=2)
    return cwd


@pytest.fixture(scope='module')
def trained(ade_cwd) -> Path:
    """tools/train.py: 2 iterations of 2 crops, then an evaluation."""
    work = ade_cwd / 'train'
    output = run_tool(python_tool(
        'train.py', TINY, '--work-dir', work, '--cfg-options', 'train_cfg.max_iters=2',
        'train_cfg.val_interval=2', 'default_hooks.checkpoint.interval=2',
        'train_dataloader.batch_size=2', 'default_hooks.logger.interval=1'), cwd=ade_cwd)
    (work / 'output.txt').write_text(output)
    return work


@pytest.mark.slow
def test_train_tool_trains_and_evaluates_miou(trained):
    output = (trained / 'output.txt').read_text()
    assert re.search(r'Iter\(train\) \[2/2\].*loss: [\d.]+', output), output[-3000:]
    losses = [float(v) for v in re.findall(r'Iter\(train\) \[\d/2\].* loss: ([\d.]+)', output)]
    assert len(losses) == 2 and all(np.isfinite(losses))
    a_acc, m_iou, m_acc = miou(output)
    assert 0 <= m_iou <= 100 and 0 < a_acc <= 100 and 0 <= m_acc <= 100
    for name in CLASSES:  # IoUMetric's per-class table
        assert re.search(rf'\|\s*{name}\s*\|\s*[\d.]+\s*\|\s*[\d.]+\s*\|', output)
    assert (trained / 'iter_2.pth').is_file()


@pytest.mark.slow
def test_test_tool_gives_the_same_miou(trained, ade_cwd):
    output = run_tool(python_tool('test.py', TINY, trained / 'iter_2.pth', '--work-dir',
                                  trained / 'test'), cwd=ade_cwd)
    # The same checkpoint on the same images as the evaluation at the end of training.
    assert miou(output) == miou((trained / 'output.txt').read_text())


@pytest.mark.slow
def test_dist_train_with_two_cpu_processes_keeps_replicas_identical(ade_cwd, tmp_path):
    (tmp_path / 'start_end_weights.py').write_text(
        'import torch\n'
        'from mmengine.hooks import Hook\n'
        'from mmengine.registry import HOOKS\n\n\n'
        '@HOOKS.register_module()\n'
        'class SaveStartEndWeights(Hook):\n\n'
        '    def save(self, runner, when):\n'
        '        model = getattr(runner.model, "module", runner.model)\n'
        '        weights = {k: v.detach().clone() for k, v in model.named_parameters()}\n'
        '        torch.save(weights, f"{runner.work_dir}/{when}_rank{runner.rank}.pth")\n\n'
        '    def before_train(self, runner):\n'
        '        self.save(runner, "start")\n\n'
        '    def after_train(self, runner):\n'
        '        self.save(runner, "end")\n')
    (tmp_path / 'dist.py').write_text(
        f'_base_ = {str(TINY)!r}\n'
        "custom_imports = dict(imports=['emo_mm', 'start_end_weights'], "
        'allow_failed_imports=False)\n'
        "custom_hooks = [dict(type='RNGStateHook'), dict(type='SaveStartEndWeights')]\n"
        'train_cfg = dict(max_iters=1, val_interval=100)\n'
        'train_dataloader = dict(batch_size=2)\n'
        'default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=1))\n')
    work = tmp_path / 'work'
    output = run_tool([str(REPO / 'tools' / 'dist_train.sh'), str(tmp_path / 'dist.py'), '2',
                       '--work-dir', str(work)], cwd=ade_cwd,
                      env=dict(PORT=str(free_port()), PYTHONPATH=str(tmp_path)))
    assert re.search(r'Iter\(train\) \[1/1\]', output)
    start, end = ([torch.load(work / f'{when}_rank{r}.pth') for r in (0, 1)]
                  for when in ('start', 'end'))
    assert len(end[0]) > 100 and end[0].keys() == end[1].keys()
    for name, weight in end[0].items():
        assert torch.equal(start[0][name], start[1][name]), name  # DDP's broadcast
        assert torch.equal(weight, end[1][name]), name
    moved = [name for name, weight in end[0].items() if not torch.equal(weight, start[0][name])]
    assert len(moved) > len(end[0]) // 2
    assert any(name.startswith('neck.') for name in moved)


@pytest.mark.slow
def test_inference_api_on_a_real_photo_draws_class_names(trained, monkeypatch):
    from mmseg.apis import inference_model, init_model
    from mmseg.visualization import SegLocalVisualizer
    model = init_model(str(TINY), str(trained / 'iter_2.pth'), device='cpu')
    assert model.dataset_meta['classes'] == CLASSES  # from the checkpoint
    photo = cv2.imread(str(PHOTO))
    result = inference_model(model, str(PHOTO))
    prediction = result.pred_sem_seg.data
    assert tuple(prediction.shape) == (1, *photo.shape[:2])
    present = sorted(set(prediction.unique().tolist()))
    assert present and set(present) <= set(range(len(CLASSES)))

    texts: List[str] = []
    put_text = cv2.putText
    monkeypatch.setattr(cv2, 'putText',
                        lambda img, text, *a, **k: (texts.append(text), put_text(img, text, *a,
                                                                                 **k))[1])
    visualizer = SegLocalVisualizer(name='sem_fpn_test', alpha=0.5)
    visualizer.dataset_meta = model.dataset_meta
    rgb = photo[..., ::-1].copy()
    visualizer.add_datasample('photo', rgb, result, draw_gt=False, with_labels=True)
    drawn = visualizer.get_image()
    assert drawn.shape == rgb.shape
    assert np.abs(drawn.astype(int) - rgb.astype(int)).sum(-1).mean() > 10  # painted over
    assert sorted(texts) == sorted(CLASSES[i] for i in present)
