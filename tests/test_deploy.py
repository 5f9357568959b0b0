"""ONNX export and onnxruntime inference (``emo_mm.deploy``, ``tools/export_onnx.py``).

* the graph pieces against mmdet / torch (anchors, traceable adaptive pooling, EMO's window
  padding traced at a size that needs none);
* every family (SSDLite, RetinaNet, DeepLabv3, PSPNet) exports and runs at two sizes unlike the
  traced one, matching the PyTorch model;
* the demo's models, trained once per session (mAP ~0.8, mIoU ~84): ``tools/test.py CONFIG
  x.onnx`` gives the metrics of ``x.pth``, and the inference APIs give the same boxes / label
  maps on real photos of odd sizes;
* bad input: clear errors naming the problem.
"""
import copy
import re
from pathlib import Path
from typing import Dict

import mmcv
import pytest
import torch
from mmengine.config import Config

from conftest import (CONFIGS, REPO, assert_close, odd_photos, once_per_run, python_tool,
                      run_tool, unmatched)

import emo_mm  # noqa: F401  (registers EMO and the configs' modules)
from emo_mm.deploy import DeployError, export_onnx, init_onnx_model, use_onnx_model
from emo_mm.deploy.export import build_deploy_model, export_model
from emo_mm.deploy.graphs import TraceableAdaptiveAvgPool2d
from emo_mm.deploy.session import create_session
from emo_mm.deploy.tracing import torchscript_exporter

SSD_TINY = CONFIGS / 'ssdlite' / 'emo_1m_tiny.py'
DL_TINY = CONFIGS / 'deeplabv3' / 'emo_1m_tiny.py'


def metric(output: str, name: str) -> float:
    """The last ``name: value`` of a tools/test.py log (``coco/bbox_mAP``, ``mIoU``)."""
    values = re.findall(rf'{re.escape(name)}: (-?[\d.]+)', output)
    assert values, f'no {name} in:\n{output[-3000:]}'
    return float(values[-1])


# ------------------------------------------------------------------------- graph pieces
# Prior generators as configs write them: both centre offsets, several strides (square and
# not), ratios, scales, octave settings, base sizes, SSD's and the legacy generators.
GENERATORS = {
    'retinanet_offset_0': dict(type='AnchorGenerator', octave_base_scale=4,
                               scales_per_octave=3, ratios=[0.5, 1.0, 2.0],
                               strides=[8, 16, 32, 64, 128]),
    'retinanet_offset_half': dict(type='AnchorGenerator', octave_base_scale=4,
                                  scales_per_octave=3, ratios=[0.5, 1.0, 2.0],
                                  strides=[8, 16, 32, 64, 128], center_offset=0.5),
    'rpn_scales': dict(type='AnchorGenerator', scales=[8], ratios=[0.5, 1.0, 2.0],
                       strides=[4, 8, 16, 32, 64]),
    'scales_offset_half': dict(type='AnchorGenerator', scales=[1, 2.5], ratios=[0.25, 1.0],
                               strides=[(8, 12), 16], center_offset=0.5, scale_major=False),
    'base_sizes_offset_quarter': dict(type='AnchorGenerator', scales=[1.0], ratios=[1.0, 3.0],
                                      strides=[8, 16], base_sizes=[10, 40],
                                      center_offset=0.25),
    'box_type': dict(type='AnchorGenerator', scales=[2], ratios=[1.0], strides=[8],
                     center_offset=0.5, use_box_type=True),
    'ssd': dict(type='SSDAnchorGenerator', scale_major=False, strides=[16, 32, 64, 107, 160, 320],
                ratios=[[2, 3], [2, 3], [2, 3], [2, 3], [2, 3], [2, 3]],
                min_sizes=[48, 100, 150, 202, 253, 304], max_sizes=[100, 150, 202, 253, 304, 320]),
    'legacy_offset_half': dict(type='LegacyAnchorGenerator', octave_base_scale=4,
                               scales_per_octave=2, ratios=[0.5, 1.0], strides=[8, 16],
                               center_offset=0.5),
}


@pytest.mark.parametrize('name', list(GENERATORS))
def test_anchor_grid_is_mmdets_prior_generator(name):
    """Every level at several feature map sizes, exactly (the same float32 operations)."""
    from mmdet.registry import TASK_UTILS
    from emo_mm.deploy.box_ops import AnchorGrid
    generator = TASK_UTILS.build(GENERATORS[name])
    grid = AnchorGrid(generator)
    for level in range(generator.num_levels):
        for h, w in [(1, 1), (3, 5), (11, 7)]:
            expected = generator.single_level_grid_priors((h, w), level, device='cpu')
            expected = getattr(expected, 'tensor', expected)  # use_box_type: HorizontalBoxes
            actual = grid(level, torch.tensor(h), torch.tensor(w))
            assert torch.equal(actual, expected), (name, level, h, w)
    if type(generator).__name__ == 'AnchorGenerator':  # offset once: of the base size
        first = grid(0, torch.tensor(1), torch.tensor(1))[0]
        centre = torch.stack([(first[0] + first[2]) / 2, (first[1] + first[3]) / 2])
        offset = generator.center_offset * generator.base_sizes[0]
        assert torch.allclose(centre, torch.tensor([offset, offset])), (centre, offset)


def test_prior_generators_the_graph_does_not_compute_are_named():
    from mmdet.models.task_modules.prior_generators import AnchorGenerator
    from mmdet.registry import TASK_UTILS
    from emo_mm.deploy.box_ops import AnchorGrid

    class JitteredAnchors(AnchorGenerator):
        def single_level_grid_priors(self, *args, **kwargs):
            return super().single_level_grid_priors(*args, **kwargs) + 1

    points = TASK_UTILS.build(dict(type='MlvlPointGenerator', strides=[8, 16]))
    with pytest.raises(DeployError, match='prior generator MlvlPointGenerator'):
        AnchorGrid(points)
    with pytest.raises(DeployError, match='prior generator JitteredAnchors with its own '
                       'single_level_grid_priors'):
        AnchorGrid(JitteredAnchors(strides=[8], ratios=[1.0], scales=[1.0]))
    cfg = Config.fromfile(str(CONFIGS / 'retinanet' / 'emo_1m_tiny.py'))
    cfg.model.backbone.init_cfg = None
    cfg.model.bbox_head.anchor_generator = dict(type='MlvlPointGenerator', strides=[8, 16, 32])
    with pytest.raises(DeployError, match='prior generator MlvlPointGenerator'):
        export_onnx(cfg, None, 'never_written.onnx')


@pytest.mark.parametrize('size', [(13, 17), (6, 6), (25, 9)])
def test_traceable_adaptive_pool_is_torchs(size):
    x = torch.randn(2, 5, *size, dtype=torch.float64)
    for bins in [(1, 1), (2, 2), (3, 3), (6, 6), (4, 2)]:
        expected = torch.nn.functional.adaptive_avg_pool2d(x, bins)
        assert_close(TraceableAdaptiveAvgPool2d(bins)(x), expected, f'pool {bins} on {size}')


@pytest.mark.slow
def test_emo_traced_without_padding_runs_where_windows_need_it(tmp_path):
    """Traced at 224x224 (stride-16/32 maps 14/7: no window padding), the graph still pads
    at sizes that need it: the padding is not frozen by the trace."""
    from emo_mm import EMO
    model = EMO(arch='1m', out_indices=(3, 4), window_size=7).eval().switch_to_deploy()
    path = tmp_path / 'emo.onnx'
    with torch.no_grad():
        torch.onnx.export(model, (torch.randn(1, 3, 224, 224),), str(path), opset_version=17,
                          **torchscript_exporter(), input_names=['input'],
                          dynamic_axes={'input': {0: 'batch', 2: 'height', 3: 'width'}})
    session = create_session(str(path))
    for shape in [(1, 3, 224, 224), (2, 3, 333, 417)]:
        x = torch.randn(*shape)
        with torch.no_grad():
            expected = model(x)
        actual = [torch.from_numpy(o) for o in session.run(None, {'input': x.numpy()})]
        assert_close(actual, expected, f'EMO-1M at {shape[2:]}')


# ------------------------------------------------------------- every family, two sizes
FAMILIES = ['ssdlite', 'retinanet', 'retinanet_centred', 'deeplabv3', 'pspnet']
# Config changes of a family's variant: RetinaNet with anchors centred in their cells.
VARIANTS = {'retinanet_centred': ('retinanet', {'model.bbox_head.anchor_generator.center_offset':
                                                0.5})}
# Scales of the classification branch giving scores between ~0.3 and ~0.7.
CLS_SCALE = {'ssdlite': 4., 'retinanet': 0.8}


@pytest.mark.slow
@pytest.mark.parametrize('family', FAMILIES)
def test_family_exports_and_runs_at_two_sizes(family, tmp_path):
    """Random weights, exported at 256x320 and run at two other sizes (one with batch 2),
    against the PyTorch model in its default (BatchNorm) form. Detection heads get spread-out
    weights: at PyTorch's default init every score sits near the prior (none passes SSD's
    score_thr, and near-equal scores tie)."""
    base, options = VARIANTS.get(family, (family, {}))
    cfg = Config.fromfile(str(CONFIGS / base / 'emo_1m.py'))
    cfg.merge_from_dict(options)
    cfg.model.backbone.init_cfg = None
    torch.manual_seed(0)
    _, task, model, _ = build_deploy_model(cfg, deploy_form=False)
    if task == 'detection':
        with torch.no_grad():
            for name, param in model.bbox_head.named_parameters():
                if 'cls' in name:
                    param.mul_(CLS_SCALE[base])
    onnx_file = tmp_path / f'{family}.onnx'
    meta = export_model(cfg, task, copy.deepcopy(model), str(onnx_file), shape=(256, 320))
    assert meta['task'] == task and meta['deploy_form']
    session = create_session(str(onnx_file))
    for shape in [(1, 3, 333, 417), (2, 3, 200, 288)]:
        x = torch.randn(*shape, generator=torch.Generator().manual_seed(1))
        outputs = session.run(None, {'input': x.numpy()})
        if task == 'segmentation':
            logits, pred = map(torch.from_numpy, outputs)
            with torch.no_grad():
                expected = model.inference(x, [dict(img_shape=shape[2:], pad_shape=shape[2:],
                                                    ori_shape=shape[2:])] * shape[0])
            assert logits.shape == (shape[0], 150, *shape[2:]) and pred.shape == logits[:, 0].shape
            assert_close(logits, expected, f'{family} logits at {shape}')
            agree = (pred == expected.argmax(1)).float().mean().item()
            assert agree >= 0.999, f'label maps agree on {agree:.4%} of pixels'
        else:
            from mmdet.structures import DetDataSample
            from mmengine.structures import InstanceData
            boxes, scores, labels, image = map(torch.from_numpy, outputs)
            assert boxes.shape[1] == 4 and len(boxes) == len(scores) == len(labels) == len(image)
            assert set(image.tolist()) <= set(range(shape[0]))
            samples = [DetDataSample(metainfo=dict(img_shape=shape[2:], ori_shape=shape[2:],
                                                   scale_factor=(1., 1.)))
                       for _ in range(shape[0])]
            with torch.no_grad():
                expected = model.predict(x, samples, rescale=False)
            for i, sample in enumerate(expected):
                ref = sample.pred_instances
                ours = InstanceData(bboxes=boxes[image == i], scores=scores[image == i],
                                    labels=labels[image == i])
                assert len(ref) > 0 and len(ours) == len(ref), (len(ours), len(ref))
                # Sorted scores agree even where near-equal scores of random weights tie.
                assert_close(ours.scores.sort().values, ref.scores.sort().values,
                             f'{family} scores at {shape}')
                missing = unmatched(ours, ref, top=len(ref), score_atol=1e-4)
                assert len(missing) <= 0.05 * len(ref), f'{len(missing)} of {len(ref)} boxes'


# ------------------------------------------------ the demo's learned models, parity
def export_and_test(tmp_path_factory, outcome, tested, demo_data: Path,
                    name: str) -> Dict[str, Path]:
    """A learned model (the demo's schedule) exported with tools/export_onnx.py's defaults and
    evaluated as .onnx by tools/test.py, beside the .pth's evaluation by the same tool; once
    per run."""
    config = REPO / outcome.task.config

    def make(folder: Path) -> dict:
        onnx_file = folder / f'{name}.onnx'
        export = run_tool(python_tool('export_onnx.py', config, outcome.checkpoint, '--out',
                                      onnx_file), cwd=demo_data)
        onnx = run_tool(python_tool('test.py', config, onnx_file, '--work-dir', folder / 'test'),
                        cwd=demo_data)
        return dict(onnx=str(onnx_file), export_log=export, onnx_log=onnx)

    made = once_per_run(tmp_path_factory, f'{outcome.task.name}_onnx', make)
    return dict(cwd=demo_data, checkpoint=outcome.checkpoint, onnx=Path(made['onnx']),
                export_log=made['export_log'], pth_log=tested.output,
                onnx_log=made['onnx_log'])


@pytest.fixture(scope='module')
def ssd_run(tmp_path_factory, learned_ssdlite, learned_ssdlite_tested,
            demo_data) -> Dict[str, Path]:
    """SSDLite-EMO-1M after the demo's schedule (mAP ~0.8), as .pth and .onnx."""
    run = export_and_test(tmp_path_factory, learned_ssdlite, learned_ssdlite_tested, demo_data,
                          'ssd')
    assert 'outputs: boxes, scores, labels, batch_index' in run['export_log']
    return run


@pytest.fixture(scope='module')
def seg_run(tmp_path_factory, learned_deeplabv3, learned_deeplabv3_tested,
            demo_data) -> Dict[str, Path]:
    """DeepLabv3-EMO-1M after the demo's schedule (mIoU ~84), as .pth and .onnx."""
    return export_and_test(tmp_path_factory, learned_deeplabv3, learned_deeplabv3_tested,
                           demo_data, 'seg')


def test_onnx_detector_evaluates_to_the_checkpoints_map(ssd_run):
    pth, onnx = (metric(ssd_run[k], 'coco/bbox_mAP') for k in ('pth_log', 'onnx_log'))
    print(f'bbox mAP: .pth {pth:.3f}, .onnx {onnx:.3f}')
    assert pth >= 0.5  # a model that has learned: the 0.005 tolerance is a small part of it
    assert abs(pth - onnx) <= 0.005
    for key in ('bbox_mAP_50', 'bbox_mAP_75'):
        assert abs(metric(ssd_run['pth_log'], f'coco/{key}') -
                   metric(ssd_run['onnx_log'], f'coco/{key}')) <= 0.005


def test_onnx_segmentor_evaluates_to_the_checkpoints_miou(seg_run):
    pth, onnx = (metric(seg_run[k], 'mIoU') for k in ('pth_log', 'onnx_log'))
    print(f'mIoU: .pth {pth:.2f}, .onnx {onnx:.2f}')
    assert pth >= 70  # a model that has learned
    assert abs(pth - onnx) <= 0.3


def test_onnx_detector_in_mmdets_apis_on_odd_sized_photos(ssd_run, tmp_path):
    from mmdet.apis import inference_detector, init_detector
    from mmdet.visualization import DetLocalVisualizer
    config = str(SSD_TINY)
    ours = init_onnx_model(config, str(ssd_run['onnx']))
    theirs = init_detector(config, str(ssd_run['checkpoint']), device='cpu')
    assert ours.dataset_meta['classes'] == theirs.dataset_meta['classes']
    compared = 0
    for path in odd_photos(tmp_path):
        result = inference_detector(ours, str(path))
        expected = inference_detector(theirs, str(path))
        h, w = mmcv.imread(str(path)).shape[:2]
        assert result.metainfo['ori_shape'] == (h, w)
        found, ref = result.pred_instances, expected.pred_instances
        boxes = found.bboxes
        assert (boxes[:, 0::2] <= w + 1e-3).all() and (boxes[:, 1::2] <= h + 1e-3).all()
        # The best 100 of up to 200 boxes: none sits at the max_per_img cut.
        assert not unmatched(found, ref, top=100), path.name
        assert not unmatched(ref, found, top=100), path.name
        compared += min(100, len(ref))
    assert compared > 0, 'no detections on any photo: nothing was compared'
    visualizer = DetLocalVisualizer(name='deploy_det', save_dir=str(tmp_path))
    visualizer.dataset_meta = ours.dataset_meta
    visualizer.add_datasample('photo', mmcv.imread(str(path), channel_order='rgb'), result,
                              draw_gt=False, out_file=str(tmp_path / 'vis.jpg'))
    assert (tmp_path / 'vis.jpg').stat().st_size > 0


def same_label_maps_on_odd_photos(ours, theirs, tmp_path: Path):
    """``inference_model`` of two segmentors on the odd-sized photos: label maps of the
    photo's size agreeing on >= 99.9% of the pixels, logits within 1e-4 of their magnitude;
    returns the last photo and ``ours``'s result on it."""
    from mmseg.apis import inference_model
    for path in odd_photos(tmp_path):
        result = inference_model(ours, str(path))
        expected = inference_model(theirs, str(path))
        h, w = mmcv.imread(str(path)).shape[:2]
        pred, ref = result.pred_sem_seg.data, expected.pred_sem_seg.data
        assert pred.shape == ref.shape == (1, h, w)
        agree = (pred == ref).float().mean().item()
        assert agree >= 0.999, f'{path.name}: label maps agree on {agree:.4%} of pixels'
        assert_close(result.seg_logits.data, expected.seg_logits.data, path.name, rtol=1e-4)
    return path, result


def test_onnx_segmentor_in_mmsegs_apis_on_odd_sized_photos(seg_run, tmp_path):
    from mmseg.apis import init_model
    from mmseg.visualization import SegLocalVisualizer
    config = str(DL_TINY)
    ours = init_onnx_model(config, str(seg_run['onnx']))
    theirs = init_model(config, str(seg_run['checkpoint']), device='cpu')
    assert ours.dataset_meta['classes'] == theirs.dataset_meta['classes']
    path, result = same_label_maps_on_odd_photos(ours, theirs, tmp_path)
    visualizer = SegLocalVisualizer(name='deploy_seg', save_dir=str(tmp_path))
    visualizer.dataset_meta = ours.dataset_meta
    visualizer.add_datasample('photo', mmcv.imread(str(path), channel_order='rgb'), result,
                              draw_gt=False, out_file=str(tmp_path / 'vis.jpg'))
    assert (tmp_path / 'vis.jpg').stat().st_size > 0


def test_onnx_file_records_its_input_convention_and_classes(ssd_run):
    from emo_mm.deploy.metadata import read_metadata
    meta = read_metadata(str(ssd_run['onnx']))
    cfg = Config.fromfile(str(SSD_TINY))
    assert meta['task'] == 'detection' and meta['family'] == 'SingleStageDetector'
    assert meta['input']['mean'] == list(cfg.model.data_preprocessor.mean)
    assert meta['input']['std'] == list(cfg.model.data_preprocessor.std)
    assert meta['input']['channels'] == 'RGB' and not meta['input']['normalised_in_graph']
    assert tuple(meta['dataset_meta']['classes']) == cfg.metainfo['classes']
    inputs = meta['session'].session.get_inputs()  # onnxruntime's own
    assert [i.name for i in inputs] == ['input']
    # SSDLite's test pipeline resizes every image to 320x320: its default graph is static.
    assert inputs[0].shape == [1, 3, 320, 320] == meta['input']['shape']


# ------------------------------------------------------------------------------ bad input
@pytest.mark.slow
def test_checkpoint_that_does_not_fit_the_config(ssd_run):
    output = run_tool(python_tool('export_onnx.py', CONFIGS / 'ssdlite' / 'emo_5m.py',
                                  ssd_run['checkpoint'], '--out', 'x.onnx'),
                      cwd=ssd_run['cwd'], expect_ok=False)
    assert 'does not fit' in output and 'shape mismatches' in output and 'Traceback' not in output
    output = run_tool(python_tool('export_onnx.py', SSD_TINY, 'missing.pth', '--out', 'x.onnx'),
                      cwd=ssd_run['cwd'], expect_ok=False)
    assert 'error: checkpoint file not found: missing.pth' in output


def test_unknown_or_unsupported_family_is_named(tmp_path):
    two_stage = tmp_path / 'cascade_rcnn.py'  # Faster / Mask R-CNN export (test_deploy_two_stage)
    two_stage.write_text("_base_ = 'mmdet::cascade_rcnn/cascade-rcnn_r50_fpn_1x_coco.py'\n")
    with pytest.raises(DeployError, match='two-stage detector.*CascadeRoIHead.*not supported'):
        export_onnx(str(two_stage), None, str(tmp_path / 'x.onnx'))
    classifier = Config(dict(default_scope='mmpretrain', model=dict(type='ImageClassifier')))
    with pytest.raises(DeployError, match="'ImageClassifier'.*does not know; supported"):
        export_onnx(classifier, None, str(tmp_path / 'x.onnx'))


def test_missing_corrupt_or_foreign_onnx_is_refused(tmp_path):
    cfg = Config.fromfile(str(SSD_TINY))
    with pytest.raises(DeployError, match='does not exist; export one'):
        use_onnx_model(cfg, str(tmp_path / 'missing.onnx'))
    corrupt = tmp_path / 'corrupt.onnx'
    corrupt.write_bytes(b'not a protobuf' * 10)
    with pytest.raises(DeployError, match='not a loadable ONNX model'):
        use_onnx_model(cfg, str(corrupt))
    foreign = tmp_path / 'foreign.onnx'
    torch.onnx.export(torch.nn.Conv2d(3, 3, 1), (torch.randn(1, 3, 8, 8),), str(foreign),
                      **torchscript_exporter())
    with pytest.raises(DeployError, match='not one exported by tools/export_onnx.py'):
        use_onnx_model(cfg, str(foreign))


def test_onnx_from_another_config_is_refused(ssd_run, seg_run):
    other = Config.fromfile(str(CONFIGS / 'ssdlite' / 'emo_1m.py'))  # 80 classes, not 3
    with pytest.raises(DeployError, match=r'(?s)different config.*bbox_head.num_classes: '
                       r'exported 3, config 80'):
        use_onnx_model(other, str(ssd_run['onnx']))
    with pytest.raises(DeployError, match='segmentation model but .* detection config'):
        use_onnx_model(Config.fromfile(str(SSD_TINY)), str(seg_run['onnx']))
    output = run_tool(python_tool('test.py', CONFIGS / 'ssdlite' / 'emo_5m.py', ssd_run['onnx']),
                      cwd=ssd_run['cwd'], expect_ok=False)
    assert 'different config' in output and 'export_onnx.py' in output


@pytest.mark.slow
def test_export_tool_says_each_mistake_in_one_line(tmp_path):
    """tools/export_onnx.py goes through the tools' runner: one `error:` line, exit status 1."""
    corrupt = tmp_path / 'corrupt.pth'
    corrupt.write_bytes(b'not a checkpoint' * 8)
    cases = [((SSD_TINY, 'missing.pth'), 'checkpoint file not found: missing.pth'),
             ((SSD_TINY, corrupt), f'{corrupt} is not a'),
             ((tmp_path / 'missing.py', corrupt), 'does not exist')]
    for args, message in cases:
        output = run_tool(python_tool('export_onnx.py', *args, '--out', tmp_path / 'x.onnx'),
                          cwd=tmp_path, expect_ok=False)
        errors = [line for line in output.splitlines() if line.startswith('error: ')]
        assert len(errors) == 1 and message in errors[0], output[-2000:]
        assert 'Traceback' not in output


@pytest.mark.slow
def test_single_channel_head_and_bgr_input_as_mmseg(tmp_path):
    """A binary DeepLabv3 (``out_channels=1``: mmseg thresholds the sigmoid) fed BGR batches
    (``bgr_to_rgb=False``): the graph's ``seg_pred`` and the wrapper's label maps are mmseg's,
    and the metadata says BGR."""
    from mmseg.apis import inference_model
    cfg = Config.fromfile(str(DL_TINY))
    cfg.merge_from_dict({
        'model.data_preprocessor.bgr_to_rgb': False,
        'model.decode_head.num_classes': 2, 'model.decode_head.out_channels': 1,
        'model.decode_head.loss_decode.use_sigmoid': True,
        'model.auxiliary_head.num_classes': 2,
        'test_dataloader.dataset.metainfo': dict(classes=('background', 'object'),
                                                 palette=[[0, 0, 0], [255, 255, 255]])})
    torch.manual_seed(0)
    _, task, model, _ = build_deploy_model(cfg)
    photo = str(REPO / 'demo' / 'coffee.jpg')
    model.cfg = cfg
    with torch.no_grad():  # a threshold that splits this model's pixels on the photo
        logits = inference_model(model, photo).seg_logits.data
    threshold = float(logits.median())  # postprocess_result's seg_logits are sigmoids
    cfg.model.decode_head.threshold = model.decode_head.threshold = threshold
    onnx_file = tmp_path / 'binary.onnx'
    meta = export_model(cfg, task, copy.deepcopy(model), str(onnx_file))
    assert meta['input']['channels'] == 'BGR' and meta['out_channels'] == 1
    assert 'BGR' in meta['input']['convention'] and 'RGB' not in meta['input']['convention']
    session = create_session(str(onnx_file))
    x = torch.randn(1, 3, 160, 224, generator=torch.Generator().manual_seed(1))
    graph_logits, graph_pred = session.run(None, {'input': x.numpy()})
    assert graph_logits.shape == (1, 1, 160, 224)
    assert (graph_pred == (torch.from_numpy(graph_logits[:, 0]).sigmoid() > threshold)
            .numpy()).all()
    expected = inference_model(model, photo).pred_sem_seg.data
    found = inference_model(init_onnx_model(cfg, str(onnx_file)), photo).pred_sem_seg.data
    assert 0.05 < expected.float().mean() < 0.95  # both labels present: the threshold decides
    agree = (found == expected).float().mean().item()
    assert agree >= 0.999, f'label maps agree on {agree:.4%} of pixels'


def test_export_filters_only_the_warnings_its_docs_name(tmp_path):
    """The exporter's deprecation notice is not shown; a warning of the model's own is."""
    import warnings
    from emo_mm.deploy.tracing import trace_to_onnx

    class Warns(torch.nn.Module):
        def forward(self, x):
            warnings.warn('a warning of the model', UserWarning)
            return x * 2

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        trace_to_onnx(Warns(), (torch.randn(1, 3),), str(tmp_path / 'x.onnx'), ['x'], ['y'],
                      {}, 17)
        warnings.warn('after the export', DeprecationWarning)
    messages = [str(w.message) for w in caught]
    assert 'a warning of the model' in messages and 'after the export' in messages
    assert not any('TorchScript-based ONNX export' in m for m in messages), messages
