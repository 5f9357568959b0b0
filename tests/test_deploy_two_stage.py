"""Two-stage detectors and EfficientMod graphs in ONNX (issue 19, ``emo_mm.deploy.two_stage``).

* the graph pieces against mmcv / mmdet: ``RoiAlign`` (both ``aligned`` modes) and the
  multi-level RoI extraction, in float64 through onnxruntime;
* Mask R-CNN-EfficientMod and Semantic FPN (EfficientMod, EMO) with random weights export and
  run at two sizes unlike the traced one, one a batch of two differently sized images, matching
  PyTorch;
* tiny Mask R-CNNs trained by the session (EMO-1M and a small EfficientMod, tests/conftest.py):
  ``tools/test.py CONFIG x.onnx`` gives the checkpoint's bbox and segm mAP, and
  ``inference_detector`` / ``DetInferencer`` give the same boxes and masks on images of odd
  sizes (and nothing on an image without objects);
* what the graph does not compute is refused, naming it.
"""
import copy
import re
from pathlib import Path
from typing import Dict, List

import mmcv
import numpy as np
import pytest
import torch
from mmengine.config import Config
from torch import nn

from conftest import (CONFIGS, FP64_RTOL, assert_close, matches, odd_photos, python_tool,
                      run_tool, unmatched)

import emo_mm  # noqa: F401
from emo_mm.deploy import DeployError, export_onnx, init_onnx_model, use_onnx_model
from emo_mm.deploy.export import build_deploy_model, export_model
from emo_mm.deploy.roi_align import MultiLevelRoIAlign, onnx_roi_align
from emo_mm.deploy.session import create_session
from emo_mm.deploy.tracing import torchscript_exporter

MASK_RCNN = CONFIGS / 'mask_rcnn'


def coco_metric(output: str, name: str) -> float:
    """The last ``coco/<name>: value`` of a tool's log (``bbox_mAP``, ``segm_mAP_50``...)."""
    values = re.findall(rf'coco/{re.escape(name)}: (-?[\d.]+)', output)
    assert values, f'no coco/{name} in:\n{output[-3000:]}'
    return float(values[-1])


def mask_agreement(ours, theirs, pairs: Dict[int, int]) -> float:
    """Over matched detections (``theirs`` index -> ``ours`` index), the fraction of the
    pixels inside either box where the two masks agree (the worst pair)."""
    worst = 1.
    for j, i in pairs.items():
        box = torch.cat([torch.minimum(ours.bboxes[i, :2], theirs.bboxes[j, :2]).floor(),
                         torch.maximum(ours.bboxes[i, 2:], theirs.bboxes[j, 2:]).ceil()]).long()
        x1, y1, x2, y2 = box.clamp(min=0).tolist()
        a, b = ours.masks[i, y1:y2, x1:x2], theirs.masks[j, y1:y2, x1:x2]
        if a.numel():
            worst = min(worst, (a == b).float().mean().item())
    return worst


# ---------------------------------------------------------------------------- graph pieces
class _Pool(nn.Module):
    def __init__(self, aligned: bool, sampling_ratio: int) -> None:
        super().__init__()
        self.aligned, self.sampling_ratio = aligned, sampling_ratio

    def forward(self, feats, boxes, index):
        return onnx_roi_align(feats, boxes, index, (7, 5), 1 / 8, self.sampling_ratio,
                              self.aligned)


def _random_boxes(n: int, size: float, generator: torch.Generator) -> torch.Tensor:
    """Boxes of every scale, some reaching beyond the image, some degenerate (zero area)."""
    xy = torch.rand(n, 2, generator=generator, dtype=torch.float64) * size * 1.2 - 0.1 * size
    wh = torch.rand(n, 2, generator=generator, dtype=torch.float64) ** 3 * size
    wh[:3] = 0.
    return torch.cat([xy, xy + wh], 1)


@pytest.mark.parametrize('aligned,sampling_ratio', [(True, 0), (False, 0), (True, 2)])
def test_onnx_roi_align_is_mmcvs(tmp_path, aligned, sampling_ratio):
    """ONNX RoiAlign (onnxruntime) computes mmcv's RoIAlign, in float64, for RoIs of every
    size, partly outside the map and degenerate, in a batch of two maps."""
    from mmcv.ops import RoIAlign
    g = torch.Generator().manual_seed(0)
    feats = torch.randn(2, 3, 13, 17, generator=g, dtype=torch.float64)
    boxes = _random_boxes(40, 136., g)
    index = torch.randint(0, 2, (40,), generator=g)
    path = tmp_path / 'pool.onnx'
    torch.onnx.export(_Pool(aligned, sampling_ratio), (feats, boxes, index), str(path),
                      input_names=['feats', 'boxes', 'index'], opset_version=17,
                      dynamic_axes={'feats': {0: 'n', 2: 'h', 3: 'w'}, 'boxes': {0: 'r'},
                                    'index': {0: 'r'}}, **torchscript_exporter())
    mmcv_pool = RoIAlign((7, 5), 1 / 8, sampling_ratio, 'avg', aligned)
    session = create_session(str(path))
    for n, (h, w), count in [(2, (13, 17), 40), (1, (9, 30), 25)]:
        x = feats[:n, :, :h, :w].contiguous()
        ix = index[:count] % n
        expected = mmcv_pool(x, torch.cat([ix[:, None].double(), boxes[:count]], 1))
        actual = session.run(None, {'feats': x.numpy(), 'boxes': boxes[:count].numpy(),
                                    'index': ix.numpy()})[0]
        assert_close(torch.from_numpy(actual), expected, f'RoiAlign at {h}x{w}')


def test_multi_level_extraction_is_mmdets(tmp_path):
    """Each RoI is pooled from the FPN level mmdet's SingleRoIExtractor picks (float64; the
    same kernel in PyTorch, ONNX RoiAlign in onnxruntime), in the RoIs' order."""
    from mmdet.registry import MODELS
    from mmengine.registry import init_default_scope
    init_default_scope('mmdet')
    cfg = Config.fromfile(str(MASK_RCNN / 'emo_1m.py'))
    extractor = MODELS.build(cfg.model.roi_head.bbox_roi_extractor).double()
    g = torch.Generator().manual_seed(0)
    feats = [torch.randn(2, 256, 64 // s, 96 // s, generator=g, dtype=torch.float64)
             for s in (1, 2, 4, 8, 16)]  # strides 4-64 of a 256x384 input
    # Random boxes (mostly small) and one box of each level's scale (56-112-224-448 and up).
    sides = torch.tensor([[40., 60.], [150., 100.], [300., 250.], [520., 480.]],
                         dtype=torch.float64)
    boxes = torch.cat([_random_boxes(56, 300., g), torch.cat([sides * 0.1, sides * 1.1], 1)])
    index = torch.randint(0, 2, (60,), generator=g)
    ours = MultiLevelRoIAlign(extractor)
    assert set(ours.levels(boxes).tolist()) == {0, 1, 2, 3}  # every level used
    expected = extractor(feats[:4], torch.cat([index[:, None].double(), boxes], 1))
    assert torch.equal(ours(feats, boxes, index), expected)

    class Extract(nn.Module):
        def forward(self, f0, f1, f2, f3, boxes, index):
            return ours([f0, f1, f2, f3], boxes, index)

    path = tmp_path / 'extract.onnx'
    names = ['f0', 'f1', 'f2', 'f3']
    torch.onnx.export(Extract(), (*feats[:4], boxes, index), str(path),
                      input_names=names + ['boxes', 'index'], opset_version=17,
                      dynamic_axes={'boxes': {0: 'r'}, 'index': {0: 'r'}},
                      **torchscript_exporter())
    session = create_session(str(path))
    for count in (60, 7):  # the first 7 RoIs: some levels get none
        actual = session.run(None, {**{n: f.numpy() for n, f in zip(names, feats)},
                                    'boxes': boxes[:count].numpy(),
                                    'index': index[:count].numpy()})[0]
        assert_close(torch.from_numpy(actual), expected[:count], f'{count} RoIs', FP64_RTOL)
    assert len(set(ours.levels(boxes[:7]).tolist())) < 4


# ------------------------------------------------------------ EfficientMod graphs, two sizes
def _spread_scores(model: nn.Module, scale: float) -> None:
    """Random weights give every RoI nearly the same class scores (about 1 / (C + 1), below
    score_thr): scale the classifier so that scores spread between ~0.1 and ~0.7 (too large a
    scale saturates them at 1, and ties decide)."""
    with torch.no_grad():
        model.roi_head.bbox_head.fc_cls.weight.mul_(scale)


def _det_samples(shapes: List[tuple], batch_shape: tuple) -> list:
    from mmdet.structures import DetDataSample
    return [DetDataSample(metainfo=dict(img_shape=s, ori_shape=s, scale_factor=(1., 1.),
                                        batch_input_shape=batch_shape, pad_shape=batch_shape))
            for s in shapes]


@pytest.mark.slow
def test_mask_rcnn_efficientmod_exports_and_runs_at_two_sizes(tmp_path):
    """Mask R-CNN-EfficientMod-s, random weights, exported at 256x320 and run at 333x417
    (batch 1) and as a batch of two images of 200x288 and 170x250 (padded to 200x288: boxes
    clipped to each image), against PyTorch's predict: the same detections and masks. Fewer
    proposals (300) and detections (50) than COCO's 1000 / 100 keep it short (the same graph)."""
    from emo_mm.deploy.two_stage_detector import OnnxTwoStageDetector
    cfg = Config.fromfile(str(MASK_RCNN / 'efficientmod_s.py'))
    cfg.model.backbone.init_cfg = None
    cfg.merge_from_dict({'model.test_cfg.rpn.max_per_img': 300,
                         'model.test_cfg.rcnn.max_per_img': 50})
    torch.manual_seed(0)
    _, task, model, _ = build_deploy_model(cfg, deploy_form=False)
    _spread_scores(model, 6.)
    onnx_file = tmp_path / 'mask_rcnn.onnx'
    meta = export_model(cfg, task, copy.deepcopy(model), str(onnx_file), shape=(256, 320))
    assert meta['outputs'] == ['boxes', 'scores', 'labels', 'batch_index', 'mask_logits']
    onnx_model = OnnxTwoStageDetector(str(onnx_file), cfg.model.data_preprocessor)
    compared, worst = 0, 1.
    for shapes, batch_shape in [([(333, 417)], (333, 417)),
                                ([(200, 288), (170, 250)], (200, 288))]:
        x = torch.randn(len(shapes), 3, *batch_shape, generator=torch.Generator().manual_seed(1))
        for i, (h, w) in enumerate(shapes):  # the preprocessor pads with zeros
            x[i, :, h:], x[i, :, :, w:] = 0., 0.
        with torch.no_grad():
            expected = model.predict(x, _det_samples(shapes, batch_shape), rescale=False)
        results = onnx_model.predict(x, _det_samples(shapes, batch_shape), rescale=False)
        for (h, w), ref, ours in zip(shapes, expected, results):
            ref, ours = ref.pred_instances, ours.pred_instances
            assert len(ref) == 50 and ours.masks.shape == (len(ours), h, w)
            assert (ours.bboxes[:, 2] <= w).all() and (ours.bboxes[:, 3] <= h).all()
            pairs = {j: i for j, i in matches(ours, ref, top=len(ref), score_atol=1e-4).items()
                     if i >= 0}
            assert len(pairs) >= 0.95 * len(ref), f'{len(pairs)} of {len(ref)} matched'
            assert len(unmatched(ref, ours, top=len(ours), score_atol=1e-4)) <= 0.05 * len(ours)
            agree = mask_agreement(ours, ref, pairs)
            assert agree >= 0.99, f'masks agree on {agree:.2%} of their boxes\' pixels'
            compared, worst = compared + len(pairs), min(worst, agree)
    print(f'{compared} detections matched; masks agree on >= {worst:.2%} of their pixels')


@pytest.mark.slow
@pytest.mark.parametrize('name', ['efficientmod_s', 'emo_1m'])
def test_sem_fpn_exports_and_runs_at_two_sizes(tmp_path, name):
    """Semantic FPN (EfficientMod-s; EMO-1M, whose head is the same), random weights, exported
    at 256x320, run at 333x417 and 200x288 (batch 2): the logits of PyTorch's inference (its
    head upsamples by a scale factor: sizes computed in the graph, not frozen at 256x320)."""
    cfg = Config.fromfile(str(CONFIGS / 'sem_fpn' / f'{name}.py'))
    cfg.model.backbone.init_cfg = None
    torch.manual_seed(0)
    _, task, model, _ = build_deploy_model(cfg, deploy_form=False)
    onnx_file = tmp_path / 'sem_fpn.onnx'
    export_model(cfg, task, copy.deepcopy(model), str(onnx_file), shape=(256, 320))
    session = create_session(str(onnx_file))
    for shape in [(1, 3, 333, 417), (2, 3, 200, 288)]:
        x = torch.randn(*shape, generator=torch.Generator().manual_seed(1))
        logits, pred = map(torch.from_numpy, session.run(None, {'input': x.numpy()}))
        with torch.no_grad():
            expected = model.inference(x, [dict(img_shape=shape[2:], pad_shape=shape[2:],
                                                ori_shape=shape[2:])] * shape[0])
        assert logits.shape == (shape[0], 150, *shape[2:])
        assert_close(logits, expected, f'Semantic FPN-{name} logits at {shape}')
        agree = (pred == expected.argmax(1)).float().mean().item()
        assert agree >= 0.999, f'label maps agree on {agree:.4%} of pixels'


@pytest.mark.slow
def test_faster_rcnn_exports_boxes_only(tmp_path):
    """A two-stage detector without a mask head (Faster R-CNN: the tiny Mask R-CNN without
    its mask branch), random weights: the graph ends in boxes, and the wrapper scales them to
    the original image as mmdet's box head does (rescale=True), matching PyTorch."""
    from emo_mm.deploy.two_stage_detector import OnnxTwoStageDetector
    cfg = Config.fromfile(str(MASK_RCNN / 'emo_1m_tiny.py'))
    cfg.model.type = 'FasterRCNN'
    del cfg.model.roi_head['mask_head'], cfg.model.roi_head['mask_roi_extractor']
    torch.manual_seed(0)
    _, task, model, _ = build_deploy_model(cfg, deploy_form=False)
    _spread_scores(model, 10.)
    onnx_file = tmp_path / 'faster_rcnn.onnx'
    meta = export_model(cfg, task, copy.deepcopy(model), str(onnx_file), shape=(128, 160))
    assert meta['outputs'] == ['boxes', 'scores', 'labels', 'batch_index']
    onnx_model = OnnxTwoStageDetector(str(onnx_file), cfg.model.data_preprocessor)
    x = torch.randn(1, 3, 150, 190, generator=torch.Generator().manual_seed(1))
    samples = _det_samples([(150, 190)], (150, 190))
    for sample in samples:  # a 300x317 image resized by (0.6, 0.5)
        sample.set_metainfo(dict(ori_shape=(300, 317), scale_factor=(0.6, 0.5)))
    with torch.no_grad():
        ref = model.predict(x, copy.deepcopy(samples))[0].pred_instances
    ours = onnx_model.predict(x, samples)[0].pred_instances
    assert len(ref) == 20 and 'masks' not in ours
    assert not unmatched(ours, ref, top=len(ref), score_atol=1e-4)
    assert not unmatched(ref, ours, top=len(ours), score_atol=1e-4)
    assert ours.bboxes[:, 2].max() > 190  # in the original image's pixels


# ----------------------------------------------------- tiny models trained here, parity
@pytest.fixture(scope='module', params=['emo', 'efficientmod'])
def exported(request, tmp_path_factory) -> Dict[str, object]:
    """A learned tiny Mask R-CNN (session fixture) exported to ONNX, and tools/test.py's
    output on the .onnx. EMO-1M goes through tools/export_onnx.py, EfficientMod through
    export_onnx()."""
    trained = request.getfixturevalue(f'learned_mask_rcnn_{request.param}')
    folder = tmp_path_factory.mktemp(f'exported_{request.param}')
    onnx_file = folder / 'model.onnx'
    if request.param == 'emo':
        output = run_tool(python_tool('export_onnx.py', trained.config, trained.checkpoint,
                                      '--out', onnx_file), cwd=folder)
        assert 'outputs: boxes, scores, labels, batch_index, mask_logits' in output
    else:
        export_onnx(str(trained.config), str(trained.checkpoint), str(onnx_file))
    test_log = run_tool(python_tool('test.py', trained.config, onnx_file, '--work-dir',
                                    folder / 'test', '--cfg-options', *trained.data_options),
                        cwd=trained.cwd)  # its data/tiny_coco
    return dict(trained=trained, onnx=onnx_file, test_log=test_log)


@pytest.mark.slow
def test_onnx_mask_rcnn_evaluates_to_the_checkpoints_map(exported):
    """tools/test.py on the .onnx: the bbox and segm mAP (and mAP_50) of the checkpoint, which
    the training's last evaluation measured, within 0.005; a model that has learned."""
    pth, onnx = exported['trained'].log, exported['test_log']
    for kind in ('bbox', 'segm'):
        print(f'{kind} mAP: .pth {coco_metric(pth, f"{kind}_mAP"):.3f}, '
              f'.onnx {coco_metric(onnx, f"{kind}_mAP"):.3f}')
        assert coco_metric(pth, f'{kind}_mAP') >= 0.1, 'the tiny model has not learned'
        for key in (f'{kind}_mAP', f'{kind}_mAP_50'):
            assert abs(coco_metric(pth, key) - coco_metric(onnx, key)) <= 0.005, key


def odd_tiny_images(trained, tmp_path: Path) -> List[Path]:
    """Held-out tiny COCO images (objects the model knows) resized to odd sizes."""
    paths = []
    val = sorted((trained.cwd / 'data' / 'tiny_coco' / 'val2017').glob('*.jpg'))
    for image, (h, w) in zip(val, [(157, 203), (141, 131), (211, 166)]):
        path = tmp_path / f'tiny_{image.stem}_{h}x{w}.png'
        mmcv.imwrite(mmcv.imresize(mmcv.imread(str(image)), (w, h)), str(path))
        paths.append(path)
    return paths


@pytest.mark.slow
def test_onnx_mask_rcnn_in_mmdets_apis_on_odd_sized_images(exported, tmp_path):
    """inference_detector with init_onnx_model against init_detector with the checkpoint, on
    odd-sized tiny-set images and photos: every box matched both ways (label, IoU > 0.95,
    score within 1e-3), masks agreeing on >= 99% of their boxes' pixels; a blank image gives
    no detection (empty masks of its size) in both."""
    from mmdet.apis import inference_detector, init_detector
    trained = exported['trained']
    ours = init_onnx_model(str(trained.config), str(exported['onnx']))
    theirs = init_detector(str(trained.config), str(trained.checkpoint), device='cpu')
    assert ours.dataset_meta['classes'] == theirs.dataset_meta['classes']
    blank = tmp_path / 'blank.png'
    mmcv.imwrite(np.full((150, 190, 3), 128, np.uint8), str(blank))
    compared, worst = 0, 1.
    for path in odd_tiny_images(trained, tmp_path) + odd_photos(tmp_path) + [blank]:
        result = inference_detector(ours, str(path))
        expected = inference_detector(theirs, str(path))
        h, w = mmcv.imread(str(path)).shape[:2]
        found, ref = result.pred_instances, expected.pred_instances
        assert found.masks.shape == (len(found), h, w) and found.masks.dtype == torch.bool
        assert not unmatched(ref, found, top=len(found)), path.name
        pairs = {j: i for j, i in matches(found, ref, top=len(ref)).items() if i >= 0}
        assert len(pairs) == len(ref), path.name
        worst = min(worst, mask_agreement(found, ref, pairs))
        compared += len(pairs)
        if path == blank:
            assert len(found) == len(ref) == 0
    print(f'{compared} detections compared; masks agree on >= {worst:.2%} of their pixels')
    assert compared >= 5, 'too few detections to compare'
    assert worst >= 0.99


@pytest.mark.slow
def test_det_inferencer_draws_the_onnx_models_masks(exported, tmp_path):
    """DetInferencer on a config made to run the .onnx (use_onnx_model): the file's class
    names, the predictions inference_detector gives (with masks), and a picture with the masks
    painted on. The image is the odd-sized one the tiny model is surest of (a 64-iteration
    model may see nothing in some of them on some CPUs)."""
    from mmdet.apis import DetInferencer, inference_detector
    trained = exported['trained']
    direct = init_onnx_model(str(trained.config), str(exported['onnx']))
    results = {path: inference_detector(direct, str(path)).pred_instances
               for path in odd_tiny_images(trained, tmp_path)}
    image = max(results, key=lambda path: max(results[path].scores.tolist(), default=0.))
    expected = results[image]
    assert len(expected) > 0 and expected.scores.max() >= 0.3, 'no confident detection to draw'
    cfg = Config.fromfile(str(trained.config))
    use_onnx_model(cfg, str(exported['onnx']))
    inferencer = DetInferencer(model=cfg, weights=None, device='cpu', show_progress=False)
    assert inferencer.model.dataset_meta['classes'] == ('circle', 'square', 'triangle')
    out = inferencer(str(image), out_dir=str(tmp_path / 'out'), return_datasamples=True)
    instances = out['predictions'][0].pred_instances
    assert instances.masks.shape[1:] == mmcv.imread(str(image)).shape[:2]
    assert torch.equal(instances.labels, expected.labels)
    assert torch.equal(instances.bboxes, expected.bboxes)
    assert torch.equal(instances.masks, expected.masks)
    drawn = mmcv.imread(str(tmp_path / 'out' / 'vis' / image.name))
    original = mmcv.imread(str(image))
    covered = instances.masks[instances.scores >= 0.3].any(0).numpy()
    assert covered.any()
    difference = np.abs(drawn.astype(int) - original.astype(int)).sum(-1)
    assert difference[covered].mean() > 10  # the masks are painted over the image


@pytest.mark.slow
def test_two_stage_file_records_both_inputs(tmp_path):
    """The metadata says the two inputs (img_shape optional, as for every detection graph)
    and the mask settings; not fed, img_shape lets each image fill the input."""
    from emo_mm.deploy.metadata import IMG_SHAPE_CONVENTION, read_metadata
    cfg = Config.fromfile(str(MASK_RCNN / 'emo_1m_tiny.py'))
    onnx_file = tmp_path / 'x.onnx'
    export_onnx(cfg, None, str(onnx_file), shape=(96, 128))
    meta = read_metadata(str(onnx_file))
    assert meta['wrapper'] == 'OnnxTwoStageDetector' and meta['family'] == 'MaskRCNN'
    assert meta['inputs'] == ['input', 'img_shape'] and meta['input']['dynamic']
    assert meta['input']['img_shape'] == IMG_SHAPE_CONVENTION
    assert 'mask_logits' in meta['input']['convention']
    assert meta['mask_thr_binary'] == 0.5 and meta['mask_size'] == [28, 28]
    session = meta['session']
    assert [(i.name, i.type, i.shape) for i in session.session.get_inputs()] == [
        ('input', 'tensor(float)', ['batch', 3, 'height', 'width'])]  # onnxruntime's own
    assert session.optional_inputs == ['img_shape']
    x = torch.randn(2, 3, 100, 140, generator=torch.Generator().manual_seed(0)).numpy()
    full = session.run(None, {'input': x, 'img_shape': np.array([[100, 140]] * 2)})
    for ours, fed in zip(session.run(None, {'input': x}), full):
        assert np.array_equal(ours, fed)


# ------------------------------------------------------------------------------ bad input
def test_what_the_graph_does_not_compute_is_refused(tmp_path):
    cascade = tmp_path / 'cascade.py'
    cascade.write_text("_base_ = 'mmdet::cascade_rcnn/cascade-mask-rcnn_r50_fpn_1x_coco.py'\n")
    with pytest.raises(DeployError, match=r"roi_head 'CascadeRoIHead' \(not StandardRoIHead\)"):
        export_onnx(str(cascade), None, str(tmp_path / 'x.onnx'))
    base = Config.fromfile(str(MASK_RCNN / 'emo_1m_tiny.py'))
    for option, message in [
            ({'model.roi_head.bbox_head.bbox_coder.add_ctr_clamp': True},
             'box head box coder with add_ctr_clamp=True'),
            ({'model.test_cfg.rcnn.nms.type': 'soft_nms'}, r'test_cfg.rcnn.nms .*soft_nms'),
            ({'model.roi_head.mask_roi_extractor.roi_layer.pool_mode': 'max'},
             "pool_mode='max'")]:
        cfg = copy.deepcopy(base)
        cfg.merge_from_dict(option)
        with pytest.raises(DeployError, match=message):
            export_onnx(cfg, None, str(tmp_path / 'x.onnx'))
    with pytest.raises(DeployError, match='opset 15 < 16: two-stage'):
        export_onnx(base, None, str(tmp_path / 'x.onnx'), opset=15)


@pytest.mark.slow
def test_two_stage_exports_static_and_dynamic_as_every_family(tmp_path):
    """The one export path: a Mask R-CNN whose test pipeline resizes every image to one size
    gets a static graph (batch 1, that size) by default, like SSDLite; --dynamic gives a
    dynamic one; both compute the same on that size. Aspect ratio kept: static is refused,
    as for RetinaNet."""
    from emo_mm.deploy.metadata import read_metadata
    cfg = Config.fromfile(str(MASK_RCNN / 'emo_1m_tiny.py'))
    with pytest.raises(DeployError, match='keeps the aspect ratio'):
        export_onnx(cfg, None, str(tmp_path / 'x.onnx'), dynamic=False)
    cfg.merge_from_dict({'test_dataloader.dataset.pipeline.2': dict(
        type='Resize', scale=(128, 96), keep_ratio=False)})
    torch.manual_seed(0)
    _, task, model, _ = build_deploy_model(cfg)
    files = {kind: tmp_path / f'{kind}.onnx' for kind in ('static', 'dynamic')}
    export_model(cfg, task, copy.deepcopy(model), str(files['static']), dynamic=False)
    export_model(cfg, task, copy.deepcopy(model), str(files['dynamic']), shape=(64, 96))
    static, dynamic = (read_metadata(str(files[k])) for k in ('static', 'dynamic'))
    assert static['input']['shape'] == [1, 3, 96, 128] and not static['input']['dynamic']
    assert dynamic['input']['shape'] == ['batch', 3, 'height', 'width']
    assert static['wrapper'] == dynamic['wrapper'] == 'OnnxTwoStageDetector'
    x = torch.randn(1, 3, 96, 128, generator=torch.Generator().manual_seed(0)).numpy()
    outputs = [meta['session'].run(None, {'input': x}) for meta in (static, dynamic)]
    for name, ours, theirs in zip(static['outputs'], *outputs):
        assert ours.shape == theirs.shape and len(theirs) > 0, name
        assert_close(torch.from_numpy(ours).double(), torch.from_numpy(theirs).double(), name)
