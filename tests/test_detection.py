"""COCO detection: configs against the authors' recipe and parameter counts, the SSDHead fix, the
tiny dataset, and the real tools (train, test, 2-process CPU training) and inference APIs on it."""
import json
import pickle
import re
import subprocess
import sys
from pathlib import Path
from typing import Dict

import mmcv
import pytest
import torch
from conftest import (REPO, TOOLS, assert_same_predictions, build_detector, free_port,
                      load_predictions, run_tool)
from mmengine.config import Config

import emo_mm  # noqa: F401
from emo_mm.datasets.preflight import missing_data_paths
from emo_mm.datasets.tiny_coco import CLASSES, make_tiny_coco

PHOTO = REPO / 'demo' / 'grace_hopper.jpg'
PARAMS: Dict[str, Dict[str, int]] = {
    'ssdlite': {'1m': 2_311_980, '2m': 3_342_716, '5m': 6_076_540},
    'retinanet': {'1m': 10_479_244, '2m': 11_555_644, '5m': 14_440_508},
}
# What differs between the variants in the authors' configs.
VARIANTS = {'1m': dict(window=7, drop_path=0.04036, dims=(32, 48, 80, 168)),
            '2m': dict(window=7, drop_path=0.05, dims=(32, 48, 120, 200)),
            '5m': dict(window=10, drop_path=0.05, dims=(48, 72, 160, 288))}
TINY = {family: REPO / 'configs' / family / 'emo_1m_tiny.py' for family in PARAMS}
CKPT_URL = 'https://github.com/zhangzjn/EMO/raw/main/resources/EMO_{}/net.pth'


def config(family: str, arch: str) -> Config:
    return Config.fromfile(str(REPO / 'configs' / family / f'emo_{arch}.py'))


def coco_metrics(output: str, phase: str) -> Dict[str, float]:
    """The ``coco/bbox_*`` numbers of the last ``Epoch(<phase>)`` line of a tool's log."""
    lines = [line for line in output.splitlines() if f'Epoch({phase})' in line and 'coco/' in line]
    assert lines, f'no CocoMetric line for {phase} in:\n{output[-3000:]}'
    return {k: float(v) for k, v in re.findall(r'coco/(bbox_\w+): (-?[\d.]+)', lines[-1])}


# ------------------------------------------------------------------------ configs and recipe
@pytest.mark.parametrize('family,arch', [(f, a) for f in PARAMS for a in PARAMS[f]])
def test_config_builds_with_the_published_parameter_count(family, arch):
    cfg = config(family, arch)
    backbone = cfg.model.backbone
    assert backbone.init_cfg == dict(type='Pretrained', checkpoint=CKPT_URL.format(arch.upper()))
    assert (backbone.arch, backbone.window_size, backbone.drop_path_rate) == (
        arch, VARIANTS[arch]['window'], VARIANTS[arch]['drop_path'])
    # SSDLite also imports FixedSSDHead (emo_mm.models.dense_heads), which needs mmdet.
    imports = ['emo_mm', 'emo_mm.datasets.checked_loader']
    if family == 'ssdlite':
        imports.append('emo_mm.models.dense_heads')
    assert cfg.custom_imports == dict(imports=imports, allow_failed_imports=False)
    model = build_detector(cfg)
    assert model.bbox_head.num_classes == 80
    assert sum(p.numel() for p in model.parameters()) == PARAMS[family][arch]


def test_ssdlite_carries_the_authors_recipe():
    cfg = config('ssdlite', '5m')
    b = cfg.model.backbone
    assert (b.out_indices, b.frozen_stages, b.norm_eval, b.norm_cfg) == (
        (3, 4), -1, True, dict(type='SyncBN'))
    assert cfg.model.neck.in_channels == (160, 288)
    assert cfg.model.neck.out_channels == (160, 288, 512, 256, 256, 128)
    assert cfg.model.bbox_head.in_channels == (160, 288, 512, 256, 256, 128)
    anchors = cfg.model.bbox_head.anchor_generator
    assert anchors.strides == [16, 32, 64, 107, 160, 320]
    assert anchors.min_sizes == [48, 100, 150, 202, 253, 304]
    assert anchors.max_sizes == [100, 150, 202, 253, 304, 320]
    assert cfg.model.test_cfg.score_thr == 0.02 and cfg.model.test_cfg.max_per_img == 200
    assert cfg.model.test_cfg.nms.iou_threshold == 0.45
    assert cfg.optim_wrapper.optimizer == dict(type='AdamW', lr=1.2e-3, betas=(0.9, 0.999),
                                               weight_decay=0.05)
    assert cfg.train_dataloader.batch_size == 24 and cfg.auto_scale_lr.base_batch_size == 192
    assert cfg.train_dataloader.dataset.type == 'RepeatDataset'
    assert cfg.train_dataloader.dataset.times == 5
    assert [t.type for t in cfg.train_dataloader.dataset.dataset.pipeline] == [
        'LoadImageFromFile', 'LoadAnnotations', 'Expand', 'MinIoURandomCrop', 'Resize',
        'RandomFlip', 'PhotoMetricDistortion', 'PackDetInputs']
    assert cfg.train_dataloader.dataset.dataset.pipeline[4].scale == (320, 320)
    assert (cfg.train_cfg.max_epochs, cfg.train_cfg.val_interval) == (120, 5)
    assert cfg.default_hooks.checkpoint.interval == 5
    warmup, cosine = cfg.param_scheduler
    assert (warmup.type, warmup.start_factor, warmup.end, warmup.by_epoch) == (
        'LinearLR', 0.001, 500, False)
    assert (cosine.type, cosine.T_max, cosine.eta_min, cosine.by_epoch) == (
        'CosineAnnealingLR', 120, 0, True)


def test_retinanet_carries_the_authors_recipe():
    cfg = config('retinanet', '2m')
    b = cfg.model.backbone
    assert (b.out_indices, b.frozen_stages, b.norm_eval, b.norm_cfg) == (
        (1, 2, 3, 4), 1, True, dict(type='SyncBN'))
    assert cfg.model.neck.in_channels == [32, 48, 120, 200]
    assert (cfg.model.neck.start_level, cfg.model.neck.add_extra_convs,
            cfg.model.neck.num_outs, cfg.model.neck.out_channels) == (1, 'on_input', 5, 256)
    assert cfg.optim_wrapper.optimizer == dict(type='AdamW', lr=2e-4, betas=(0.9, 0.999),
                                               weight_decay=0.05)
    assert cfg.train_dataloader.batch_size == 4 and cfg.auto_scale_lr.base_batch_size == 32
    assert cfg.train_dataloader.dataset.pipeline[2].scale == (1333, 800)
    assert cfg.train_cfg.max_epochs == 12 and cfg.train_cfg.val_interval == 1
    warmup, cosine = cfg.param_scheduler
    assert (warmup.type, warmup.start_factor, warmup.end) == ('LinearLR', 0.001, 500)
    assert (cosine.type, cosine.T_max, cosine.eta_min) == ('CosineAnnealingLR', 12, 0)


@pytest.mark.parametrize('family', PARAMS)
def test_no_weight_decay_on_norm_layers(family):
    from mmengine.optim import build_optim_wrapper
    cfg = config(family, '1m')
    model = build_detector(cfg)
    decay = {}
    for group in build_optim_wrapper(model, cfg.optim_wrapper).optimizer.param_groups:
        for param in group['params']:
            decay[id(param)] = group['weight_decay']
    named = dict(model.named_parameters())
    assert decay[id(named['backbone.stage3.1.norm.norm.weight'])] == 0  # LayerNorm
    assert decay[id(named['backbone.stage2.1.norm.weight'])] == 0  # BatchNorm
    assert decay[id(named['backbone.stage3.1.qk.conv.weight'])] == 0.05


def test_data_root_is_set_in_one_place(tmp_path):
    """Changing `data_root` in the family base moves every dataset path of every variant."""
    for family in PARAMS:
        base = (REPO / 'configs' / family / '_base_emo.py').read_text()
        assert base.count("data_root = 'data/coco/'") == 1
        (tmp_path / family).mkdir()
        (tmp_path / family / '_base_emo.py').write_text(
            base.replace("data_root = 'data/coco/'", "data_root = '/elsewhere/'"))
        (tmp_path / family / 'emo_5m.py').write_text(
            (REPO / 'configs' / family / 'emo_5m.py').read_text())
        cfg = Config.fromfile(str(tmp_path / family / 'emo_5m.py'))
        paths = [path for _, path in missing_data_paths(cfg, 'train')]
        paths += [path for _, path in missing_data_paths(cfg, 'test')]
        assert paths and all(path.startswith('/elsewhere/') for path in paths), paths


# ------------------------------------------------------------------------ the SSDHead fix
def test_ssd_head_predicts_only_with_the_fixed_subclass():
    """mmdet 3.3's SSDHead.predict raises; FixedSSDHead, which our SSDLite configs name, predicts
    with the same parameters."""
    from mmdet.structures import DetDataSample

    def predict(head_type: str) -> DetDataSample:
        cfg = config('ssdlite', '1m')
        assert cfg.model.bbox_head.type == 'FixedSSDHead'
        cfg.model.bbox_head.type = head_type
        cfg.model.test_cfg.score_thr = 0.  # untrained scores are ~1/81, below the 0.02 default
        torch.manual_seed(0)
        model = build_detector(cfg).eval()
        sample = DetDataSample(metainfo=dict(img_shape=(320, 320), ori_shape=(320, 320),
                                             scale_factor=(1., 1.)))
        with torch.no_grad():
            return model.predict(torch.rand(1, 3, 320, 320), [sample])[0], model

    fixed, model = predict('FixedSSDHead')
    assert len(fixed.pred_instances) == 200 and fixed.pred_instances.labels.max() < 80
    assert fixed.pred_instances.bboxes.shape == (200, 4)
    with pytest.raises(AttributeError, match="no attribute 'loss_cls'"):
        predict('SSDHead')
    from mmdet.models.dense_heads import SSDHead
    plain = SSDHead(**{k: v for k, v in config('ssdlite', '1m').model.bbox_head.items()
                       if k != 'type'})
    assert plain.state_dict().keys() == model.bbox_head.state_dict().keys()


@pytest.mark.slow
def test_emo_mm_neither_imports_nor_patches_mmdet():
    code = ('import sys, emo_mm; assert "mmdet" not in sys.modules; '
            'from mmdet.models.dense_heads import SSDHead; '
            'assert "emo_mm" not in SSDHead.__init__.__module__')
    subprocess.run([sys.executable, '-c', code], cwd=REPO, check=True, timeout=300)


# ------------------------------------------------------------------------ tiny dataset
def test_tiny_coco_is_deterministic_and_matches_the_demo_configs(tmp_path):
    first = make_tiny_coco(tmp_path / 'a', num_train=3, num_val=2, image_size=96, seed=5)
    second = make_tiny_coco(tmp_path / 'b', num_train=3, num_val=2, image_size=96, seed=5)
    for split in ('train2017', 'val2017'):
        name = f'annotations/instances_{split}.json'
        assert (first / name).read_bytes() == (second / name).read_bytes()
        coco = json.loads((first / name).read_text())
        assert [c['name'] for c in coco['categories']] == list(CLASSES)
        assert coco['annotations'] and all(a['image_id'] in {i['id'] for i in coco['images']}
                                           for a in coco['annotations'])
        for ann in coco['annotations']:
            x, y, w, h = ann['bbox']
            assert 0 <= x and 0 <= y and x + w <= 96 and y + h <= 96 and w >= 20
        for image in coco['images']:
            assert (first / split / image['file_name']).read_bytes() == (
                second / split / image['file_name']).read_bytes()
    train = json.loads((first / 'annotations/instances_train2017.json').read_text())
    val = json.loads((first / 'annotations/instances_val2017.json').read_text())
    assert train['annotations'][0]['bbox'] != val['annotations'][0]['bbox']  # held out
    for path in TINY.values():
        assert Config.fromfile(str(path)).metainfo['classes'] == CLASSES


# ------------------------------------------------------------------------ tools
@pytest.fixture(scope='module')
def tiny_coco_cwd(tmp_path_factory) -> Path:
    """A directory holding data/tiny_coco (4 train, 4 val images): the tools run in it, so the
    demo configs' relative data_root resolves there."""
    cwd = tmp_path_factory.mktemp('tiny_coco_cwd')
    make_tiny_coco(cwd / 'data' / 'tiny_coco', num_train=4, num_val=4, image_size=128)
    return cwd


@pytest.mark.slow
def test_missing_dataset_fails_early_naming_the_path(tmp_path):
    output = run_tool([sys.executable, str(TOOLS / 'train.py'), str(TINY['ssdlite'])],
                      cwd=tmp_path, expect_ok=False)
    assert output.startswith('error: ') and 'reads dataset paths that do not exist' in output
    assert 'Traceback' not in output
    assert 'train_dataloader.dataset.dataset.ann_file: ' \
           'data/tiny_coco/annotations/instances_train2017.json' in output
    assert str(tmp_path / 'data/tiny_coco') in output
    assert 'Epoch(train)' not in output and not (tmp_path / 'work_dirs').exists()


@pytest.mark.slow
def test_retinanet_trains_one_iteration_and_tests(tiny_coco_cwd):
    work = tiny_coco_cwd / 'retinanet'
    output = run_tool([sys.executable, str(TOOLS / 'train.py'), str(TINY['retinanet']),
                       '--work-dir', str(work), '--cfg-options', 'train_dataloader.batch_size=4',
                       'train_cfg.max_epochs=1', 'default_hooks.checkpoint.interval=1'],
                      cwd=tiny_coco_cwd)
    assert 'Epoch(train) [1][1/1]' in output and 'nan' not in output.split('Epoch(train)')[-1]
    assert 'SyncBN needs GPUs, so plain BN is used instead' in output
    output = run_tool([sys.executable, str(TOOLS / 'test.py'), str(TINY['retinanet']),
                       str(work / 'epoch_1.pth'), '--work-dir', str(work),
                       '--out', str(work / 'preds.pkl'),
                       # after one iteration every score is still near the focal-loss prior 0.01
                       '--cfg-options', 'model.test_cfg.score_thr=0'], cwd=tiny_coco_cwd)
    metrics = coco_metrics(output, 'test')
    assert {'bbox_mAP', 'bbox_mAP_50', 'bbox_mAP_75'} <= set(metrics)
    assert all(0 <= metrics[k] <= 1 for k in ('bbox_mAP', 'bbox_mAP_50'))
    with open(work / 'preds.pkl', 'rb') as f:
        assert len(pickle.load(f)) == 4  # one prediction per val image


def run_log(work_dir: Path) -> str:
    """The log file mmengine wrote for the run in ``work_dir`` (config dump included)."""
    logs = [p for p in work_dir.glob('*/*.log') if p.stem == p.parent.name]
    assert len(logs) == 1, logs
    return logs[0].read_text()


def test_dist_train_on_cpu_keeps_replicas_identical(learned_ssdlite):
    """The demo's 2-process run (tools/dist_train.sh on CPU): gloo, evaluation during training
    (the SSDHead fix), identical replicas that trained, BN statistics the same everywhere."""
    work = learned_ssdlite.work_dir
    output = (work / 'train.log').read_text()
    log = run_log(work)
    assert "'backend': 'gloo'" in log or "backend='gloo'" in log
    assert 'Epoch(train) [16][' in output
    coco_metrics(output, 'val')  # SSDLite validation during training works (SSDHead fix)
    rank0, rank1 = (torch.load(work / f'state_rank{r}.pth') for r in (0, 1))
    assert rank0.keys() == rank1.keys()
    model = build_detector(Config.fromfile(str(TINY['ssdlite'])))
    params = dict(model.named_parameters())
    for name in params:
        assert torch.equal(rank0[name], rank1[name]), name
    assert any(not torch.equal(rank0[n], p.detach()) for n, p in params.items())  # it trained
    # SyncBN became per-process BN; its running statistics, averaged over the processes after
    # every iteration (AverageBatchNormStatsHook), are the same in both, and moved.
    stats = [n for n in rank0 if n.endswith(('running_mean', 'running_var'))]
    assert len(stats) > 50 and 'AverageBatchNormStatsHook' in log
    assert all(torch.equal(rank0[n], rank1[n]) for n in stats)
    buffers = dict(model.named_buffers())
    assert all(not torch.equal(rank0[n], buffers[n]) for n in stats)
    checkpoint = torch.load(learned_ssdlite.checkpoint)['state_dict']
    assert all(torch.equal(checkpoint[n], rank0[n]) for n in rank0)


def test_dist_checkpoint_evaluates_in_test_tool(learned_ssdlite_tested, learned_ssdlite):
    metrics = coco_metrics(learned_ssdlite_tested.output, 'test')
    assert {'bbox_mAP', 'bbox_mAP_50', 'bbox_mAP_s', 'bbox_mAP_m', 'bbox_mAP_l'} <= set(metrics)
    # The checkpoint evaluates as the last evaluation during training did (2 processes, each
    # on its half of the images with its own copy of the model: equal copies).
    assert metrics['bbox_mAP'] == pytest.approx(
        learned_ssdlite.val_history[-1]['coco/bbox_mAP'], abs=0.002)
    assert len(list(learned_ssdlite_tested.work_dir.glob('*/pictures/*.jpg'))) == 24  # every val image


def test_dist_test_and_mmdets_own_test_tool_agree(learned_ssdlite_tested, learned_ssdlite,
                                                  demo_data, tmp_path):
    """tools/dist_test.sh (2 CPU processes) and mmdet's packaged tools/test.py predict the boxes
    of our tools/test.py."""
    import mmdet
    checkpoint = str(learned_ssdlite.checkpoint)
    expected = load_predictions(learned_ssdlite_tested.predictions)
    run_tool([str(TOOLS / 'dist_test.sh'), str(TINY['ssdlite']), checkpoint, '2',
              '--work-dir', str(tmp_path / 'dist_test'), '--out', str(tmp_path / 'dist.pkl')],
             cwd=demo_data, env=dict(PORT=str(free_port())))
    assert_same_predictions(load_predictions(tmp_path / 'dist.pkl'), expected)
    mmdet_test = Path(mmdet.__file__).parent / '.mim' / 'tools' / 'test.py'
    run_tool([sys.executable, str(mmdet_test), str(TINY['ssdlite']), checkpoint,
              '--work-dir', str(tmp_path / 'mmdet_test'), '--out', str(tmp_path / 'mmdet.pkl')],
             cwd=demo_data, env=dict(PYTHONPATH=str(REPO)))  # emo_mm uninstalled
    assert_same_predictions(load_predictions(tmp_path / 'mmdet.pkl'), expected)


def test_dist_checkpoint_in_inference_apis(learned_ssdlite, tmp_path):
    from mmdet.apis import DetInferencer, inference_detector, init_detector
    checkpoint = str(learned_ssdlite.checkpoint)
    model = init_detector(str(TINY['ssdlite']), checkpoint, device='cpu')
    rank0 = torch.load(learned_ssdlite.work_dir / 'state_rank0.pth')
    assert all(torch.equal(v, rank0[k]) for k, v in model.state_dict().items())
    assert tuple(model.dataset_meta['classes']) == CLASSES
    result = inference_detector(model, str(PHOTO))
    boxes = result.pred_instances
    assert len(boxes) > 0 and result.ori_shape == mmcv.imread(str(PHOTO)).shape[:2]
    assert boxes.labels.max() < len(CLASSES)
    names = {model.dataset_meta['classes'][i] for i in boxes.labels.tolist()}
    assert names <= set(CLASSES)
    inferencer = DetInferencer(model=str(TINY['ssdlite']), weights=checkpoint, device='cpu',
                               show_progress=False)
    out = inferencer(str(PHOTO), out_dir=str(tmp_path), no_save_pred=False)
    prediction = out['predictions'][0]
    assert len(prediction['bboxes']) > 0 and max(prediction['labels']) < len(CLASSES)
    assert list(tmp_path.glob('vis/*.jpg')) and list(tmp_path.glob('preds/*.json'))
