"""ADE20K segmentation with EMO: configs, tiny dataset, tools, inference, BN corner cases.

The runs through the tools use the demo's DeepLabv3-EMO-1M, trained once per session with
tools/dist_train.sh (``learned_deeplabv3`` in conftest.py).
"""
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import List

import cv2
import matplotlib
import numpy as np
import pytest
import torch
from conftest import REPO, build_segmentor
from mmengine.config import Config
from mmengine.registry import init_default_scope

from emo_mm.engine.batchnorm_check import add_pooled_batchnorm_checks
from emo_mm.datasets.tiny_ade import ADE20K_IDS, CLASSES, make_tiny_ade

FAMILIES = ('deeplabv3', 'pspnet')
VARIANTS = ('1m', '2m', '5m')
TINY_CONFIG = REPO / 'configs/deeplabv3/emo_1m_tiny.py'
# Whole model with the auxiliary head (the EMO paper's segmentation models).
PARAMS = {
    ('deeplabv3', '1m'): 5_653_188, ('deeplabv3', '2m'): 6_967_156,
    ('deeplabv3', '5m'): 10_355_828, ('pspnet', '1m'): 4_374_724,
    ('pspnet', '2m'): 5_557_620, ('pspnet', '5m'): 8_585_844,
}
# The authors' backbone settings: (window, drop path, stage3 width, stage4 width).
BACKBONE = {'1m': (7, 0.04036, 80, 168), '2m': (7, 0.05, 120, 200), '5m': (16, 0.05, 160, 288)}
PHOTO = Path(matplotlib.get_data_path()) / 'sample_data' / 'grace_hopper.jpg'
# What the tools print for the test/val metrics of IoUMetric.
MIOU = re.compile(r'aAcc: ([\d.]+)\s+mIoU: ([\d.]+)\s+mAcc: ([\d.]+)')


def config_path(family: str, variant: str) -> Path:
    return REPO / 'configs' / family / f'emo_{variant}.py'


def run(args: List[str], cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    """Runs a command with emo_mm importable (warnings off), capturing its output."""
    env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONWARNINGS='ignore')
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)
    return proc


def check(proc: subprocess.CompletedProcess) -> str:
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-4000:]
    return output


def metrics(output: str) -> List[float]:
    found = MIOU.findall(output)
    assert found, f'no IoUMetric figures in the output:\n{output[-3000:]}'
    return [float(v) for v in found[-1]]


# ----------------------------------------------------------------------------------- configs
@pytest.mark.parametrize('family,variant', list(PARAMS))
def test_config_builds_with_the_papers_parameter_count(family, variant):
    cfg = Config.fromfile(config_path(family, variant))
    window, drop_path, width3, width4 = BACKBONE[variant]
    backbone = cfg.model.backbone
    assert (backbone.type, backbone.arch) == ('EMO', variant)
    assert (backbone.window_size, backbone.drop_path_rate) == (window, drop_path)
    assert backbone.init_cfg == dict(
        type='Pretrained',
        checkpoint=f'https://github.com/zhangzjn/EMO/raw/main/resources/EMO_{variant.upper()}'
                   '/net.pth')
    assert (cfg.model.decode_head.in_channels, cfg.model.auxiliary_head.in_channels) == (
        width4, width3)
    model = build_segmentor(cfg)
    assert sum(p.numel() for p in model.parameters()) == PARAMS[family, variant]


@pytest.mark.parametrize('family', FAMILIES)
def test_config_carries_the_authors_recipe(family):
    cfg = Config.fromfile(config_path(family, '1m'))
    assert cfg.default_scope == 'mmseg'
    assert cfg.custom_imports == dict(imports=['emo_mm', 'emo_mm.datasets.checked_loader'],
                                      allow_failed_imports=False)
    assert cfg.optim_wrapper.optimizer == dict(
        type='AdamW', lr=1.2e-4, betas=(0.9, 0.999), weight_decay=0.01)
    assert cfg.param_scheduler == [dict(type='PolyLR', eta_min=0.0, power=0.9, begin=0,
                                        end=80000, by_epoch=False)]  # no warm-up
    assert (cfg.train_cfg.max_iters, cfg.train_cfg.val_interval) == (80000, 8000)
    assert cfg.train_dataloader.batch_size == 4
    crop = [t for t in cfg.train_dataloader.dataset.pipeline if t.type == 'RandomCrop'][0]
    assert tuple(crop.crop_size) == tuple(cfg.model.data_preprocessor.size) == (512, 512)
    assert 'test_pipeline' in cfg  # mmseg's inference_model reads it
    roots = {cfg[f'{split}_dataloader'].dataset.data_root for split in ('train', 'val', 'test')}
    assert roots == {cfg.data_root}

    model = cfg.model
    assert model.backbone.norm_cfg.type == 'SyncBN'
    assert model.backbone.out_indices == (1, 2, 3, 4)
    head, aux = model.decode_head, model.auxiliary_head
    assert (head.in_index, head.channels, head.num_classes, head.norm_cfg.type) == (
        3, 256, 150, 'SyncBN')
    if family == 'deeplabv3':
        assert (head.type, head.dilations) == ('ASPPHead', (1, 12, 24, 36))
    else:
        assert (head.type, head.pool_scales) == ('PSPHead', (1, 2, 3, 6))
    assert (aux.type, aux.in_index, aux.channels, aux.num_convs, aux.num_classes) == (
        'FCNHead', 2, 256, 1, 150)
    assert (aux.loss_decode.loss_weight, aux.norm_cfg.type) == (0.4, 'SyncBN')


def test_norm_parameters_get_no_weight_decay():
    from mmengine.optim import build_optim_wrapper
    cfg = Config.fromfile(config_path('deeplabv3', '1m'))
    model = build_segmentor(cfg)
    optimizer = build_optim_wrapper(model, cfg.optim_wrapper).optimizer
    decay = {id(p): group['weight_decay'] for group in optimizer.param_groups
             for p in group['params']}
    named = dict(model.named_parameters())
    assert decay[id(named['backbone.stage3.1.norm.norm.weight'])] == 0  # LayerNorm
    assert decay[id(named['backbone.stage1.1.norm.weight'])] == 0  # BatchNorm
    assert decay[id(named['backbone.stage3.1.conv_local.norm.bias'])] == 0
    assert decay[id(named['backbone.stage3.1.qk.conv.weight'])] == 0.01
    assert decay[id(named['decode_head.conv_seg.weight'])] == 0.01


def test_deeplabv3_and_pspnet_bases_differ_only_in_the_decode_head():
    """The two family bases repeat the recipe (mmengine allows no shared third base)."""
    for variant in VARIANTS:
        deeplab, psp = (Config.fromfile(config_path(f, variant)).to_dict() for f in FAMILIES)
        deeplab['model'].pop('decode_head'), psp['model'].pop('decode_head')
        assert deeplab == psp


# ------------------------------------------------------------------------------ tiny dataset
def test_tiny_ade_is_deterministic_and_in_ade20k_format(tmp_path):
    first, second = (make_tiny_ade(tmp_path / name, num_train=3, num_val=2) for name in 'ab')
    files = sorted(p.relative_to(first) for p in first.rglob('*') if p.is_file())
    assert [str(p) for p in files] == [
        f'{kind}/{split}/{i:06d}.{ext}'
        for kind, ext in (('annotations', 'png'), ('images', 'jpg'))
        for split, n in (('training', 3), ('validation', 2)) for i in range(n)]
    for path in files:
        assert (first / path).read_bytes() == (second / path).read_bytes()
    labels = np.concatenate([cv2.imread(str(p), cv2.IMREAD_UNCHANGED).ravel()
                             for p in (first / 'annotations').rglob('*.png')])
    values = set(np.unique(labels).tolist())
    assert values <= {0, *ADE20K_IDS.values()} and 0 in values and len(values) >= 4
    assert CLASSES == tuple(Config.fromfile(TINY_CONFIG).metainfo.classes)

    # mmseg's own ADE20K dataset reads it and maps the ADE20K ids onto the classes present.
    from mmseg.registry import DATASETS
    init_default_scope('mmseg')
    cfg = Config.fromfile(TINY_CONFIG)
    dataset = DATASETS.build(dict(cfg.val_dataloader.dataset, data_root=str(first)))
    assert len(dataset) == 2 and dataset.metainfo['classes'] == CLASSES
    seg = dataset[0]['data_samples'].gt_sem_seg.data
    assert set(seg.unique().tolist()) <= {0, 1, 2, 3, 255} and 255 in seg


# ------------------------------------------------------------------- runs through the tools
@pytest.fixture(scope='module')
def tiny_ade_root(tmp_path_factory) -> Path:
    """A small tiny ADE20K at ``<run dir>/data/tiny_ade``, where the demo config looks."""
    return make_tiny_ade(tmp_path_factory.mktemp('seg') / 'data' / 'tiny_ade', num_train=8,
                         num_val=4)


def run_dir(tiny_ade_root: Path) -> Path:
    return tiny_ade_root.parents[1]


def test_training_and_evaluation_through_the_tools(learned_deeplabv3):
    """The demo's run (tools/dist_train.sh, 2 processes): progress, SyncBN -> BN, and
    IoUMetric's figures and per-class table at each evaluation."""
    output = (learned_deeplabv3.work_dir / 'train.log').read_text()
    assert learned_deeplabv3.checkpoint.is_file()
    assert re.search(r'Iter\(train\) \[200/200\].*loss: [\d.]+', output)
    assert 'SyncBN' in output  # the tools say that SyncBN became BN (no GPU)
    a_acc, miou, m_acc = metrics(output)
    assert 0 <= miou <= 100 and 0 < a_acc <= 100 and 0 <= m_acc <= 100
    for name in CLASSES:  # IoUMetric's per-class table
        assert re.search(rf'\|\s*{name}\s*\|\s*[\d.]+\s*\|\s*[\d.]+\s*\|', output)


def test_our_and_mmsegs_test_scripts_give_the_same_miou(learned_deeplabv3,
                                                        learned_deeplabv3_tested, demo_data,
                                                        tmp_path):
    import mmseg
    mmseg_test = Path(mmseg.__file__).parent / '.mim' / 'tools' / 'test.py'
    assert mmseg_test.is_file()
    proc = run([sys.executable, str(mmseg_test), str(TINY_CONFIG),
                str(learned_deeplabv3.checkpoint),
                '--work-dir', str(tmp_path / 'mmseg_test')], demo_data)
    results = [metrics(learned_deeplabv3_tested.output), metrics(check(proc))]
    print(f'aAcc, mIoU, mAcc: ours {results[0]}, mmseg\'s {results[1]}')
    assert results[0][1] >= 70  # a learned model: the comparison means something
    assert results[0] == results[1]


def test_two_process_cpu_training_keeps_identical_replicas(learned_deeplabv3):
    """The demo's 2-process run: DDP broadcast the same start to both ranks and kept them
    identical, and they trained."""
    work = learned_deeplabv3.work_dir
    start, end = ([torch.load(work / f'{when}_rank{r}.pth') for r in (0, 1)]
                  for when in ('start', 'end'))
    assert end[0].keys() == end[1].keys() and len(end[0]) > 100
    for name, weight in end[0].items():
        assert torch.equal(weight, end[1][name]), name
        assert torch.equal(start[0][name], start[1][name]), name  # DDP's broadcast
    # They trained: most parameters moved from where they started.
    moved = [name for name, weight in end[0].items() if not torch.equal(weight, start[0][name])]
    assert len(moved) > len(end[0]) // 2
    # The whole state, buffers too: on CPU SyncBN became per-process BN, whose running
    # statistics AverageBatchNormStatsHook keeps equal in both processes.
    state = [torch.load(work / f'state_rank{r}.pth') for r in (0, 1)]
    assert state[0].keys() == state[1].keys()
    for name, value in state[0].items():
        assert torch.equal(value, state[1][name]), name


def test_init_model_and_inference_model_on_a_real_photo(learned_deeplabv3):
    from mmseg.apis import MMSegInferencer, inference_model, init_model
    checkpoint = learned_deeplabv3.checkpoint
    photo = cv2.imread(str(PHOTO))
    model = init_model(str(TINY_CONFIG), str(checkpoint), device='cpu')
    result = inference_model(model, str(PHOTO))
    assert tuple(result.pred_sem_seg.data.shape) == (1, *photo.shape[:2])
    assert set(result.pred_sem_seg.data.unique().tolist()) <= set(range(len(CLASSES)))
    assert model.dataset_meta['classes'] == CLASSES  # from the checkpoint

    # The full ADE20K config (no checkpoint: random weights) through the same API.
    model = init_model(str(config_path('deeplabv3', '1m')), device='cpu')
    result = inference_model(model, photo)
    assert tuple(result.pred_sem_seg.data.shape) == (1, *photo.shape[:2])

    inferencer = MMSegInferencer(str(TINY_CONFIG), str(checkpoint), device='cpu')
    prediction = inferencer(str(PHOTO))['predictions']
    assert prediction.shape == photo.shape[:2]


# -------------------------------------------------------------------- BatchNorm corner cases
def test_syncbn_trains_in_a_single_cpu_process():
    cfg = Config.fromfile(TINY_CONFIG)
    model = build_segmentor(cfg).train()
    assert sum(isinstance(m, torch.nn.SyncBatchNorm) for m in model.modules()) > 20
    assert not torch.distributed.is_initialized()
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    generator = torch.Generator().manual_seed(0)
    samples = []
    for _ in range(2):
        sample = SegDataSample(metainfo=dict(img_shape=(64, 64), pad_shape=(64, 64)))
        sample.gt_sem_seg = PixelData(data=torch.randint(0, 4, (1, 64, 64), generator=generator))
        samples.append(sample)
    losses = model.loss(torch.randn(2, 3, 64, 64), samples)
    total = sum(v for k, v in losses.items() if 'loss' in k)
    total.backward()
    assert torch.isfinite(total)
    bn = model.decode_head.bottleneck.bn
    assert isinstance(bn, torch.nn.SyncBatchNorm) and bn.num_batches_tracked == 1


@pytest.mark.parametrize('family,branch', [('deeplabv3', 'decode_head.image_pool'),
                                           ('pspnet', 'decode_head.psp_modules.0')])
def test_batch_of_one_names_the_pooled_branch(family, branch):
    model = build_segmentor(Config.fromfile(config_path(family, '1m'))).train()
    assert branch in add_pooled_batchnorm_checks(model)
    features = model.extract_feat(torch.randn(1, 3, 64, 64))
    with pytest.raises(ValueError, match=rf'{re.escape(branch)} pools every image to 1x1 .* '
                                         r'at least 2 images per process'):
        model.decode_head(features)
    model.eval()  # inference with one image is fine
    assert model.decode_head(features).shape[0] == 1


@pytest.mark.slow
def test_batch_of_one_fails_clearly_through_the_train_tool(tiny_ade_root, tmp_path):
    proc = run([sys.executable, str(REPO / 'tools/train.py'), str(TINY_CONFIG),
                '--work-dir', str(tmp_path), '--cfg-options', 'train_dataloader.batch_size=1',
                'train_cfg.max_iters=1'], run_dir(tiny_ade_root))
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert 'decode_head.image_pool pools every image to 1x1' in output, output[-3000:]
    assert 'Expected more than 1 value per channel' not in output
