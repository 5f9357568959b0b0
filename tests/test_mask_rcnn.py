"""Mask R-CNN on COCO with EMO and EfficientMod: the configs against the EfficientMod
paper's recipe and the exact parameter counts, the tiny dataset's instance masks, FLOPs of a
two-stage detector, and the real tools (train, 2-process CPU training, test with bbox + segm
mAP) and inference APIs on the tiny dataset and a real photo.

The runs through the tools share one short training (one iteration of 2 images at 128x128,
then an evaluation) of the tiny config, made once per module in a temporary folder.
"""
import pickle
import re
import shutil
from pathlib import Path
from typing import Dict, List

import cv2
import mmcv
import numpy as np
import pycocotools.mask as mask_utils
import pytest
import torch
from mmengine.config import Config
from pycocotools.coco import COCO

import emo_mm  # noqa: F401
from conftest import (CONFIGS, REPO, TESTS, build_detector, check_variant_backbone, free_port,
                      python_tool, run_tool)
from emo_mm.datasets.preflight import missing_data_paths
from emo_mm.analysis import default_input_shape, model_complexity
from emo_mm.datasets.tiny_coco import CLASSES, _draw, make_tiny_coco

FAMILY = CONFIGS / 'mask_rcnn'
# The whole model (80 classes), from the official backbones in mmdet's heads.
PARAMS = {'emo_1m': 21_181_064, 'emo_2m': 22_183_736, 'emo_5m': 24_869_944,
          'efficientmod_s': 32_630_136, 'efficientmod_s_conv': 32_591_656}
EMO = {'emo_1m': ('1m', 7, 0.04036), 'emo_2m': ('2m', 7, 0.05), 'emo_5m': ('5m', 10, 0.05)}
TINY = FAMILY / 'emo_1m_tiny.py'
PHOTO = REPO / 'demo' / 'grace_hopper.jpg'
# The tools' runs use 128x128 inputs (the tiny config's 256 costs 4x as much on a CPU).
SMALL = [f'{loader}.dataset.pipeline.{index}.scale=(128,128)'
         for loader, index in (('train_dataloader', 2), ('val_dataloader', 2),
                               ('test_dataloader', 2))]


def config(name: str) -> Config:
    return Config.fromfile(str(FAMILY / f'{name}.py'))


def coco_metrics(output: str, phase: str) -> Dict[str, float]:
    """The ``coco/{bbox,segm}_*`` figures of the last ``Epoch(<phase>)`` line of a tool's log."""
    lines = [line for line in output.splitlines() if f'Epoch({phase})' in line and 'coco/' in line]
    assert lines, f'no CocoMetric line for {phase} in:\n{output[-3000:]}'
    return {k: float(v) for k, v in re.findall(r'coco/((?:bbox|segm)_\w+): (-?[\d.]+)', lines[-1])}


# ------------------------------------------------------------------------ configs and recipe
@pytest.mark.parametrize('name', PARAMS)
def test_config_builds_with_the_exact_parameter_count(name):
    cfg = config(name)
    check_variant_backbone(cfg, name, FAMILY / f'{name}.py', EMO)
    model = build_detector(cfg).eval()
    assert model.roi_head.bbox_head.num_classes == model.roi_head.mask_head.num_classes == 80
    assert sum(p.numel() for p in model.parameters()) == PARAMS[name]
    # The FPN takes exactly the backbone's four maps, strides 4 to 32.
    with torch.no_grad():
        features = model.backbone(torch.randn(1, 3, 64, 64))
    assert [f.shape[1] for f in features] == list(cfg.model.neck.in_channels)
    assert [f.shape[-1] for f in features] == [16, 8, 4, 2]


def test_the_recipe_is_the_efficientmod_papers():
    cfg = config('emo_5m')
    assert cfg.optim_wrapper.optimizer == dict(type='AdamW', lr=2e-4, betas=(0.9, 0.999),
                                               weight_decay=0.05)
    assert 'paramwise_cfg' not in cfg.optim_wrapper and not cfg.optim_wrapper.get('clip_grad')
    warmup, steps = cfg.param_scheduler
    assert (warmup.type, warmup.start_factor, warmup.begin, warmup.end, warmup.by_epoch) == (
        'LinearLR', 0.001, 0, 500, False)
    assert (steps.type, steps.milestones, steps.gamma, steps.end, steps.by_epoch) == (
        'MultiStepLR', [8, 11], 0.1, 12, True)
    assert (cfg.train_cfg.max_epochs, cfg.train_cfg.val_interval) == (12, 1)
    assert cfg.train_dataloader.batch_size == 4 and cfg.auto_scale_lr.base_batch_size == 32
    pipeline = cfg.train_dataloader.dataset.pipeline
    assert pipeline[1] == dict(type='LoadAnnotations', with_bbox=True, with_mask=True)
    assert pipeline[2].scale == (1333, 800) and pipeline[2].keep_ratio
    assert cfg.val_evaluator.metric == ['bbox', 'segm']
    neck = cfg.model.neck
    assert (neck.type, neck.out_channels, neck.num_outs, neck.get('start_level', 0)) == (
        'FPN', 256, 5, 0)
    assert cfg.custom_hooks == [dict(type='RNGStateHook')]
    # EMO's BatchNorm as in the authors' FPN detectors: synchronised, frozen statistics.
    b = cfg.model.backbone
    assert (b.norm_cfg, b.norm_eval, b.frozen_stages) == (dict(type='SyncBN'), True, 1)


def test_emo_and_efficientmod_share_one_recipe():
    """Everything but the backbone and the FPN's input widths is the same in all five."""
    def rest(name: str) -> dict:
        cfg = config(name).to_dict()
        cfg['model'].pop('backbone'), cfg['model']['neck'].pop('in_channels')
        cfg.pop('checkpoint', None)  # EfficientMod's documented checkpoint path
        return cfg

    reference = rest('emo_5m')
    for name in PARAMS:
        assert rest(name) == reference, name


def test_data_root_is_set_in_one_place(tmp_path):
    """Changing `data_root` in the recipe moves every dataset path of both backbones' configs."""
    recipe = (FAMILY / '_recipe.py').read_text()
    assert recipe.count("data_root = 'data/coco/'") == 1
    for path in FAMILY.glob('*.py'):
        shutil.copy(path, tmp_path)
    (tmp_path / '_recipe.py').write_text(
        recipe.replace("data_root = 'data/coco/'", "data_root = '/elsewhere/'"))
    for name in ('emo_5m', 'efficientmod_s'):
        cfg = Config.fromfile(str(tmp_path / f'{name}.py'))
        paths = [path for kind in ('train', 'test')
                 for _, path in missing_data_paths(cfg, kind)]
        assert paths and all(path.startswith('/elsewhere/') for path in paths), paths


# ------------------------------------------------------------------------ instance masks
def test_tiny_coco_polygons_are_the_drawn_shapes(tmp_path):
    """Each object's polygon, rasterised by pycocotools, is the shape drawn in the image."""
    root = make_tiny_coco(tmp_path, num_train=8, num_val=2, image_size=128)
    coco = COCO(str(root / 'annotations/instances_train2017.json'))
    names = {c['id']: c['name'] for c in coco.loadCats(coco.getCatIds())}
    assert len(coco.anns) >= 10
    for ann in coco.anns.values():
        image = coco.imgs[ann['image_id']]
        mask = coco.annToMask(ann).astype(bool)
        assert mask.shape == (image['height'], image['width'])
        # The same shape, drawn again alone (the box gives _draw what it needs).
        canvas = np.zeros((image['height'], image['width'], 3), np.uint8)
        label = CLASSES.index(names[ann['category_id']])
        _draw(canvas, label, tuple(ann['bbox']), (255, 255, 255))
        drawn = canvas[..., 0] >= 128
        # They differ only along the outline (anti-aliased there): nothing of the mask lies
        # beyond a pixel outside the shape, nothing inside it deeper than 2 pixels is missed.
        shape = drawn.astype(np.uint8)
        assert not (mask & ~cv2.dilate(shape, np.ones((3, 3), np.uint8)).astype(bool)).any()
        assert not (cv2.erode(shape, np.ones((5, 5), np.uint8)).astype(bool) & ~mask).any()
        assert (mask & drawn).sum() / (mask | drawn).sum() > 0.95, ann
        ys, xs = np.nonzero(mask)
        x, y, w, h = ann['bbox']
        assert max(abs(xs.min() - x), abs(ys.min() - y),
                   abs(xs.max() + 1 - x - w), abs(ys.max() + 1 - y - h)) <= 1
    # In the image, the object's pixels carry its class colour; the background is grey.
    ann = coco.anns[1]
    pixels = mmcv.imread(str(root / 'train2017' / coco.imgs[ann['image_id']]['file_name']))
    inside = pixels[coco.annToMask(ann).astype(bool)].astype(float)
    assert np.median(inside.max(1) - inside.min(1)) > 60  # saturated, not grey


def test_mmdet_loads_the_masks(tmp_path):
    from mmdet.registry import DATASETS
    from mmdet.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    root = make_tiny_coco(tmp_path / 'data' / 'tiny_coco', num_train=2, num_val=2,
                          image_size=128)
    cfg = Config.fromfile(str(TINY))
    dataset = DATASETS.build(dict(cfg.train_dataloader.dataset, data_root=str(root) + '/'))
    sample = dataset[0]['data_samples']
    masks = sample.gt_instances.masks
    assert len(masks) == len(sample.gt_instances.bboxes) > 0
    assert masks.to_ndarray().shape[1:] == tuple(sample.img_shape)  # resized with the image
    assert dataset.metainfo['classes'] == CLASSES


# ------------------------------------------------------------------------ FLOPs
def test_get_flops_counts_a_two_stage_detector():
    """The RoI heads run on the RPN's proposals: both counters see the same, and it includes
    the mask head on 100 boxes and the box head on at least as many."""
    assert default_input_shape(str(FAMILY / 'emo_1m.py')) == (800, 1333)
    result = model_complexity(str(FAMILY / 'emo_1m.py'), shape=(320, 320))
    assert result.params == PARAMS['emo_1m'] and result.model_type == 'MaskRCNN'
    assert result.jit_flops == pytest.approx(result.hook_flops, rel=0.02)
    # multiply-accumulates per RoI of the mask head (4 convs, deconv, logits) and box head
    mask_head = 196 * (4 * 9 * 256 * 256 + 4 * 256 * 256) + 784 * 256 * 80
    box_head = 256 * 49 * 1024 + 1024 * 1024 + 1024 * (81 + 320)
    assert result.hook_flops > 100 * (mask_head + box_head)


@pytest.mark.slow
def test_the_flops_tool_takes_an_efficientmod_mask_rcnn():
    output = run_tool(python_tool('get_flops.py', FAMILY / 'efficientmod_s_conv.py', '--shape',
                                  '256', '--counter', 'hook'), cwd=REPO)
    assert 'parameters:  32,591,656' in output and '(mmdet, MaskRCNN)' in output
    assert re.search(r'module-hook counter .*: \d+\.\d+ G', output)


# ------------------------------------------------------------------------ tools
@pytest.fixture(scope='module')
def coco_cwd(tmp_path_factory) -> Path:
    """A directory holding data/tiny_coco (2 train, 2 val images of 128x128): the tools run in
    it, so the tiny config's relative data_root resolves there."""
    cwd = tmp_path_factory.mktemp('mask_rcnn')
    make_tiny_coco(cwd / 'data' / 'tiny_coco', num_train=2, num_val=2, image_size=128)
    return cwd


@pytest.fixture(scope='module')
def trained(coco_cwd) -> Path:
    """tools/train.py: one epoch of one iteration (2 images), then bbox + segm evaluation."""
    work = coco_cwd / 'train'
    output = run_tool(python_tool(
        'train.py', TINY, '--work-dir', work, '--cfg-options', 'train_dataloader.batch_size=2',
        'train_cfg.max_epochs=1', 'train_cfg.val_interval=1',
        'default_hooks.checkpoint.interval=1', 'default_hooks.logger.interval=1', *SMALL),
        cwd=coco_cwd)
    (work / 'output.txt').write_text(output)
    return work


@pytest.mark.slow
def test_train_tool_trains_and_evaluates_boxes_and_masks(trained):
    output = (trained / 'output.txt').read_text()
    last = [line for line in output.splitlines() if 'Epoch(train) [1][1/1]' in line]
    assert last, output[-3000:]
    losses = dict(re.findall(r'(loss_\w+): (\S+)', last[0]))
    assert {'loss_rpn_cls', 'loss_rpn_bbox', 'loss_cls', 'loss_bbox', 'loss_mask'} <= set(losses)
    assert all(np.isfinite(float(v)) for v in losses.values())
    metrics = coco_metrics(output, 'val')
    assert {'bbox_mAP', 'bbox_mAP_50', 'segm_mAP', 'segm_mAP_50'} <= set(metrics)
    assert (trained / 'epoch_1.pth').is_file()


@pytest.mark.slow
def test_test_tool_gives_bbox_and_segm_map(trained, coco_cwd):
    output = run_tool(python_tool(
        'test.py', TINY, trained / 'epoch_1.pth', '--work-dir', trained / 'test',
        '--out', trained / 'preds.pkl',
        # after one iteration the scores are still low: keep every box
        '--cfg-options', 'model.test_cfg.rcnn.score_thr=0', *SMALL), cwd=coco_cwd)
    metrics = coco_metrics(output, 'test')
    for kind in ('bbox', 'segm'):
        assert {f'{kind}_mAP', f'{kind}_mAP_50', f'{kind}_mAP_75'} <= set(metrics)
        assert 0 <= metrics[f'{kind}_mAP'] <= metrics[f'{kind}_mAP_50'] <= 1
    with open(trained / 'preds.pkl', 'rb') as f:
        predictions = pickle.load(f)
    assert len(predictions) == 2  # one per val image
    for prediction in predictions:
        instances = prediction['pred_instances']
        assert len(instances['masks']) == len(instances['bboxes']) > 0
        assert all(tuple(rle['size']) == (128, 128) for rle in instances['masks'])
        assert mask_utils.decode(instances['masks']).shape == (128, 128, len(instances['masks']))


@pytest.mark.slow
def test_dist_train_with_two_cpu_processes_keeps_replicas_identical(coco_cwd, tmp_path):
    (tmp_path / 'dist.py').write_text(
        f'_base_ = {str(TINY)!r}\n'
        "custom_imports = dict(imports=['emo_mm', 'rank_weights_hook'], "
        'allow_failed_imports=False)\n'
        "custom_hooks = [dict(type='RNGStateHook'), dict(type='SaveRankWeightsHook')]\n")
    work = tmp_path / 'work'
    output = run_tool(
        [str(REPO / 'tools' / 'dist_train.sh'), str(tmp_path / 'dist.py'), '2',
         '--work-dir', str(work), '--cfg-options', 'train_dataloader.batch_size=1',
         'train_cfg.max_epochs=1', 'train_cfg.val_interval=2',
         'default_hooks.checkpoint.interval=1', *SMALL],
        cwd=coco_cwd, env=dict(PORT=str(free_port()), PYTHONPATH=str(TESTS)))
    assert 'Epoch(train) [1][1/1]' in output  # 2 processes x 1 image = the 2 train images
    start, end = ([torch.load(work / f'{when}_rank{r}.pth') for r in (0, 1)]
                  for when in ('start', 'end'))
    assert len(end[0]) > 100 and end[0].keys() == end[1].keys()
    for name, weight in end[0].items():
        assert torch.equal(start[0][name], start[1][name]), name  # DDP's broadcast
        assert torch.equal(weight, end[1][name]), name
    moved = [name for name, weight in end[0].items() if not torch.equal(weight, start[0][name])]
    assert len(moved) > len(end[0]) // 2
    assert any(name.startswith('roi_head.mask_head.') for name in moved)


@pytest.mark.slow
def test_inference_api_draws_masks_with_class_names(trained, monkeypatch):
    from mmdet.apis import inference_detector, init_detector
    from mmdet.visualization import DetLocalVisualizer
    model = init_detector(str(TINY), str(trained / 'epoch_1.pth'), device='cpu',
                          cfg_options={'model.test_cfg.rcnn.score_thr': 0})
    assert tuple(model.dataset_meta['classes']) == CLASSES  # from the checkpoint
    image = mmcv.imread(str(PHOTO), channel_order='rgb')
    result = inference_detector(model, str(PHOTO))
    instances = result.pred_instances
    assert 0 < len(instances) <= 20 and instances.labels.max() < len(CLASSES)
    assert tuple(instances.masks.shape) == (len(instances), *image.shape[:2])
    covered = instances.masks.any(0).numpy()
    assert covered.any()

    texts: List[str] = []
    visualizer = DetLocalVisualizer(name='mask_rcnn_test')
    draw_texts = visualizer.draw_texts
    monkeypatch.setattr(visualizer, 'draw_texts',
                        lambda text, *a, **k: (texts.append(text), draw_texts(text, *a, **k))[1])
    visualizer.dataset_meta = model.dataset_meta
    visualizer.add_datasample('photo', image, result, draw_gt=False, pred_score_thr=0)
    drawn = visualizer.get_image()
    assert drawn.shape == image.shape
    difference = np.abs(drawn.astype(int) - image.astype(int)).sum(-1)
    assert difference[covered].mean() > 10  # the masks are painted over the photo
    names = [CLASSES[label] for label in instances.labels.tolist()]
    assert sorted(text.split(':')[0] for text in texts) == sorted(names)
