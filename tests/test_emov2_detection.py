"""A tiny SSDLite-EMOv2-1M learns from scratch in the tests and goes through the doors EMO's
detector does: ``tools/test.py`` on its checkpoint, mmdet's inference APIs, and ONNX export
(onnxruntime's boxes as PyTorch's; ``tools/test.py`` on the ``.onnx`` file scoring the
checkpoint's mAP).

The training (once per run, shared by the module): configs/ssdlite/emov2_1m_tiny.py at the
cheapest schedule measured to learn reliably: 160x160 images (a quarter of its 320x320 pixels;
the tiny shapes, 25-50% of the side, still meet the first level's 48-100 pixel anchors), 32
training images, batches of 8, 32 epochs (128 iterations) at lr 1e-2 after a 5-iteration
warm-up, constant, then cosine over the second half; held-out evaluation of 8 images every 4
epochs, data loaded in the main process. EMOv2's layer scales start at 1e-6, so it predicts
nearly nothing for ~60 iterations. Measured (held-out bbox mAP, 1 thread, ~60 CPU-seconds a
run): 0.009 at the first evaluation, 0.81, 0.78, 0.73 at the last (seeds 0, 2, 3; the config's
seed is 0); the same at 24 epochs: 0.68, 0.56, 0.52 (seeds 0-2), and 0.68 at lr 5e-3 (seed 0).
The floor (0.4) sits well below them, and fails a model that does not learn.
"""
import math
from pathlib import Path
from typing import Dict

import mmcv
import pytest
import torch
from mmengine.config import Config

from conftest import (CONFIGS, assert_same_predictions, load_predictions, odd_photos,
                      once_per_run, python_tool, run_tool, unmatched)

import emo_mm  # noqa: F401  (registers EMOv2 and the configs' modules)
from emo_mm.analysis import read_scalars
from emo_mm.analysis.work_dir import read_test_metrics
from emo_mm.datasets.tiny_coco import CLASSES, make_tiny_coco

pytestmark = pytest.mark.slow
TINY = CONFIGS / 'ssdlite' / 'emov2_1m_tiny.py'
SIZE, TRAIN_IMAGES, VAL_IMAGES, EPOCHS, LR = 160, 32, 8, 32, 1e-2


def small_config(out: Path) -> Path:
    """The tiny config at SIZE x SIZE with the test's schedule, written (whole) to ``out``."""
    cfg = Config.fromfile(str(TINY))
    loaders = (cfg.train_dataloader, cfg.val_dataloader, cfg.test_dataloader)
    pipelines = (cfg.train_dataloader.dataset.dataset.pipeline,
                 cfg.val_dataloader.dataset.pipeline, cfg.test_dataloader.dataset.pipeline)
    for pipeline in pipelines:
        resize, = (t for t in pipeline if t['type'] == 'Resize')
        resize['scale'] = (SIZE, SIZE)
    for loader in loaders:
        loader.update(num_workers=0, persistent_workers=False)
    cfg.train_dataloader.batch_size = 8
    cfg.train_dataloader.dataset.times = 1
    cfg.optim_wrapper.optimizer.lr = LR
    cfg.train_cfg.update(max_epochs=EPOCHS, val_interval=4)
    warmup, cosine = cfg.param_scheduler
    warmup.end = 5
    cosine.update(begin=EPOCHS // 2, T_max=EPOCHS - EPOCHS // 2, end=EPOCHS)
    cfg.default_hooks.logger.interval = 4
    cfg.default_hooks.checkpoint.interval = EPOCHS
    cfg.dump(str(out))
    return out


@pytest.fixture(scope='module')
def trained(tmp_path_factory) -> Dict[str, Path]:
    """``tools/train.py`` of the small config in a folder holding its tiny COCO (``cwd``):
    its ``config``, ``work_dir`` and final ``checkpoint``; once per run."""
    def make(folder: Path) -> dict:
        make_tiny_coco(folder / 'data' / 'tiny_coco', num_train=TRAIN_IMAGES,
                       num_val=VAL_IMAGES, image_size=SIZE)
        config = small_config(folder / 'emov2_ssdlite_small.py')
        run_tool(python_tool('train.py', config, '--work-dir', 'train'), cwd=folder)
        return dict(cwd=str(folder), config=str(config),
                    checkpoint=str(folder / 'train' / f'epoch_{EPOCHS}.pth'))

    made = once_per_run(tmp_path_factory, 'emov2_ssdlite_small', make)
    run = {key: Path(value) for key, value in made.items()}
    run['work_dir'] = run['cwd'] / 'train'
    return run


def held_out_maps(trained) -> list:
    return [r['coco/bbox_mAP'] for r in read_scalars(trained['work_dir']) if 'coco/bbox_mAP' in r]


@pytest.fixture(scope='module')
def tested(trained) -> Dict[str, Path]:
    """``tools/test.py`` on the checkpoint, with ``--out`` predictions (``pkl``)."""
    work_dir = trained['cwd'] / 'test'
    run_tool(python_tool('test.py', trained['config'], trained['checkpoint'], '--work-dir',
                         work_dir, '--out', work_dir / 'preds.pkl'), cwd=trained['cwd'])
    return dict(work_dir=work_dir, predictions=work_dir / 'preds.pkl')


def test_the_tiny_detector_learns(trained):
    records = read_scalars(trained['work_dir'])
    losses = [r['loss'] for r in records if 'loss' in r]
    maps = held_out_maps(trained)
    print(f'losses {losses[0]:.3f} -> {losses[-1]:.3f}; held-out bbox mAP {maps}')
    assert losses and all(math.isfinite(loss) for loss in losses)
    assert losses[-1] < 0.5 * losses[0]
    assert len(maps) == EPOCHS // 4
    assert maps[-1] >= 0.4 and maps[-1] >= maps[0] + 0.3


def test_the_test_tool_reproduces_the_last_evaluation(trained, tested):
    metrics = read_test_metrics(tested['work_dir'])
    assert metrics['coco/bbox_mAP'] == pytest.approx(held_out_maps(trained)[-1], abs=0.002)
    assert len(load_predictions(tested['predictions'])) == VAL_IMAGES


def val_images(trained) -> list:
    return sorted(str(p) for p in (trained['cwd'] / 'data' / 'tiny_coco' / 'val2017').iterdir())


def test_the_inference_apis_predict_as_the_test_tool(trained, tested, tmp_path):
    """``inference_detector`` on the held-out images predicts the boxes of ``tools/test.py``
    (another process: twins within float rounding); ``DetInferencer`` exactly its boxes."""
    from mmdet.apis import DetInferencer, inference_detector, init_detector
    model = init_detector(str(trained['config']), str(trained['checkpoint']), device='cpu')
    assert tuple(model.dataset_meta['classes']) == CLASSES
    images = val_images(trained)
    results = [inference_detector(model, image) for image in images]
    found = {Path(image).name: r.pred_instances.to_dict() for image, r in zip(images, results)}
    expected = {Path(image).name: instances  # the tool's paths are relative to its cwd
                for image, instances in load_predictions(tested['predictions']).items()}
    assert_same_predictions(found, expected)

    inferencer = DetInferencer(model=str(trained['config']), weights=str(trained['checkpoint']),
                               device='cpu', show_progress=False)
    out = inferencer(images, return_datasamples=True, out_dir=str(tmp_path))
    for result, sample in zip(results, out['predictions']):
        for key in ('bboxes', 'scores', 'labels'):
            assert torch.equal(sample.pred_instances[key], result.pred_instances[key]), key
    assert len(list(tmp_path.glob('vis/*.jpg'))) == len(images)


@pytest.fixture(scope='module')
def exported(trained) -> Dict[str, Path]:
    """tools/export_onnx.py's defaults on the checkpoint, and tools/test.py on the file."""
    onnx_file = trained['cwd'] / 'emov2_ssdlite_small.onnx'
    log = run_tool(python_tool('export_onnx.py', trained['config'], trained['checkpoint'],
                               '--out', onnx_file), cwd=trained['cwd'])
    assert 'outputs: boxes, scores, labels, batch_index' in log
    work_dir = trained['cwd'] / 'test_onnx'
    run_tool(python_tool('test.py', trained['config'], onnx_file, '--work-dir', work_dir),
             cwd=trained['cwd'])
    return dict(onnx=onnx_file, work_dir=work_dir)


def test_the_onnx_file_evaluates_to_the_checkpoints_map(tested, exported):
    pth, onnx = (read_test_metrics(run['work_dir']) for run in (tested, exported))
    print(f"bbox mAP: .pth {pth['coco/bbox_mAP']}, .onnx {onnx['coco/bbox_mAP']}")
    for key in ('coco/bbox_mAP', 'coco/bbox_mAP_50', 'coco/bbox_mAP_75'):
        assert abs(pth[key] - onnx[key]) <= 0.005, key


def test_the_onnx_file_predicts_the_checkpoints_boxes(trained, exported, tmp_path):
    """In ``inference_detector``, onnxruntime's best 100 boxes against PyTorch's (label, IoU >
    0.95, score within 1e-3), both ways: on the held-out images and an odd-sized photo."""
    from mmdet.apis import inference_detector, init_detector

    from emo_mm.deploy import init_onnx_model
    ours = init_onnx_model(str(trained['config']), str(exported['onnx']))
    theirs = init_detector(str(trained['config']), str(trained['checkpoint']), device='cpu')
    compared = 0
    for path in [*val_images(trained), str(odd_photos(tmp_path)[0])]:
        found = inference_detector(ours, path).pred_instances
        ref = inference_detector(theirs, path).pred_instances
        h, w = mmcv.imread(path).shape[:2]
        boxes = found.bboxes
        assert (boxes[:, 0::2] <= w + 1e-3).all() and (boxes[:, 1::2] <= h + 1e-3).all()
        assert not unmatched(found, ref, top=100), path
        assert not unmatched(ref, found, top=100), path
        compared += min(100, len(ref))
    assert compared > 0, 'no detections on any image: nothing was compared'
