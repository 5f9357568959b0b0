"""The exported graphs: as fast as they can be, and as mmdet computes them.

* EMO's export form (``emo_mm.deploy.emo_graph``) is the deploy form's function (float64);
* SSDLite's default graph is static (its test pipeline resizes every image to 320x320): what
  onnxruntime runs holds no shape arithmetic and one window transpose each way; it gives
  PyTorch's boxes, refuses other sizes by name, and the tools still take any image;
  ``--dynamic`` keeps a graph for any size;
* detection graphs clip boxes to each image (``img_shape``) before one class-offset NMS, so a
  padded batch of mixed sizes gives PyTorch's boxes (and without ``img_shape`` it would not);
* box-coder options the graph does not compute are refused; an image without detections gives
  empty results through tools/test.py, ``inference_detector`` and ``DetInferencer``; one
  onnxruntime session per ``init_onnx_model``.
"""
import copy
import sys

import mmcv
import numpy as np
import pytest
import torch
from mmengine.config import Config

from conftest import CONFIGS, REPO, assert_close, load_tool, python_tool, run_tool, unmatched

import emo_mm  # noqa: F401  (registers EMO and the configs' modules)
from emo_mm import EMO
from emo_mm.deploy import DeployError, export_onnx, init_onnx_model, use_onnx_model
from emo_mm.deploy.emo_graph import GraphEMO
from emo_mm.deploy.export import export_model, load_config
from emo_mm.deploy.input_size import fixed_input_size
from emo_mm.testing.emo_reference import ReferenceEMO, randomize

# The timing harness's model builders (tools/deploy_benchmark.py).
BENCH = load_tool('deploy_benchmark')
build_random, lift_class_logits, ort_session = (BENCH.build_random, BENCH.lift_class_logits,
                                                BENCH.ort_session)

SSD_TINY = CONFIGS / 'ssdlite' / 'emo_1m_tiny.py'
RETINA_TINY = CONFIGS / 'retinanet' / 'emo_1m_tiny.py'
PHOTO = sorted((REPO / 'demo').glob('*.jpg'))[0]


# ------------------------------------------------------------------ the export form of EMO
@pytest.mark.parametrize('window_size,size,static', (
    (7, (33, 131), True), (7, (33, 131), False), (4, (128, 64), True), (0, (40, 56), False)),
    ids=('padded-static', 'padded-dynamic', 'unpadded-static', 'one-window-dynamic'))
def test_graph_emo_is_the_deploy_form_in_float64(window_size, size, static):
    """Same outputs as the deploy form of EMO-1M (BatchNorm folded) to float64 rounding, with
    random weights and norm statistics: windows of 7 on maps that need padding (33x131: stage 3
    3x9, two padded windows), windows of 4 where stage 3 needs none (128x64: 8x4, two windows),
    and one window over the whole map (window 0)."""
    reference = ReferenceEMO('1m', window_size)
    randomize(reference, seed=sum(size))
    model = EMO('1m', window_size=window_size, out_indices=range(5))
    model.load_state_dict(reference.state_dict())
    model = model.double().eval().switch_to_deploy()
    graph = GraphEMO(copy.deepcopy(model), static=static)
    x = torch.randn(1, 3, *size, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert_close(graph(x), model(x), f'EMO-1M window {window_size} {size}')


def test_fixed_input_size_per_family():
    """SSDLite (ours and mmdet's SSDLite-MobileNetV2) resizes every test image to 320x320;
    RetinaNet and the segmentors keep the aspect ratio."""
    assert fixed_input_size(Config.fromfile(str(CONFIGS / 'ssdlite' / 'emo_1m.py'))) == (320, 320)
    assert fixed_input_size(Config.fromfile(str(SSD_TINY))) == (320, 320)
    mobilenet = load_config('mmdet::ssd/ssdlite_mobilenetv2-scratch_8xb24-600e_coco.py')
    assert fixed_input_size(mobilenet) == (320, 320)
    for family in ('retinanet', 'deeplabv3', 'pspnet', 'sem_fpn'):
        assert fixed_input_size(Config.fromfile(str(CONFIGS / family / 'emo_1m.py'))) is None


# ------------------------------------------------------------- SSDLite: the static graph
@pytest.fixture(scope='module')
def ssd_static(tmp_path_factory):
    """SSDLite-EMO-1M (COCO config) with random weights whose ten lifted classes put boxes
    through NMS, exported as the tool does by default, and onnxruntime's optimised graph."""
    tmp = tmp_path_factory.mktemp('ssd_static')
    config = str(CONFIGS / 'ssdlite' / 'emo_1m.py')
    cfg, task, model = build_random(config)
    lift_class_logits(model)
    onnx_file = tmp / 'ssd.onnx'
    meta = export_model(cfg, task, copy.deepcopy(model), str(onnx_file), dynamic=False)
    optimized = tmp / 'ssd.optimized.onnx'
    ort_session(str(onnx_file), threads=1, optimized_model=str(optimized))
    return dict(config=config, model=model, onnx=onnx_file, meta=meta, optimized=optimized)


@pytest.mark.slow
def test_static_graph_runs_without_shape_arithmetic(ssd_static):
    """What onnxruntime runs (its saved optimised model) computes no shape in the network:
    every size is a constant (only the detection tail sizes its candidates, by how many pass
    score_thr). Each attention block reorders its windows by one transpose in and one out,
    plus the head split of q, k and v (EMO-1M: 7 + 2 attention blocks)."""
    import onnx
    meta = ssd_static['meta']
    assert meta['input']['shape'] == [1, 3, 320, 320] and not meta['input']['dynamic']
    assert meta['inputs'] == ['input', 'img_shape']
    nodes = onnx.load(str(ssd_static['optimized'])).graph.node
    network = [n.op_type for n in nodes if n.name.startswith(('/backbone', '/neck', '/bbox_head'))]
    counts = {op: network.count(op) for op in sorted(set(network))}
    print(counts)
    assert len(network) > 300, 'node names changed: the test would check nothing'
    assert not {'Shape', 'Size', 'ConstantOfShape', 'Range', 'Unsqueeze', 'Concat'} & \
        set(network), counts
    assert counts['LayerNormalization'] == 11, counts
    # Per attention block: windows in and out, q, k and v heads; two stage outputs to NCHW.
    assert counts['Transpose'] <= 5 * (7 + 2) + 2, counts


@pytest.mark.slow
def test_static_graph_matches_pytorch_and_refuses_other_sizes(ssd_static):
    from mmdet.apis import inference_detector
    from mmdet.structures import DetDataSample
    onnx_model = init_onnx_model(ssd_static['config'], str(ssd_static['onnx']))
    x = torch.randn(1, 3, 320, 320, generator=torch.Generator().manual_seed(3))
    sample = DetDataSample(metainfo=dict(img_shape=(320, 320), ori_shape=(320, 320),
                                         scale_factor=(1., 1.)))
    with torch.no_grad():
        expected = ssd_static['model'].predict(x, [sample.clone()])[0].pred_instances
    found = onnx_model.predict(x, [sample.clone()])[0].pred_instances
    assert len(expected) == 200 and len(found) == len(expected)  # max_per_img boxes
    assert_close(found.scores.sort().values, expected.scores.sort().values, 'scores')
    assert len(unmatched(found, expected, len(expected), score_atol=1e-4)) <= 10  # ties
    with pytest.raises(DeployError, match=r'static graph.*exactly 1x3x320x320.*got '
                       r'1x3x333x417.*--dynamic'):
        onnx_model.run_graph(torch.zeros(1, 3, 333, 417))
    # The inference API resizes as the config's test pipeline does: any image, any batch.
    image = mmcv.imread(str(PHOTO))[:301, :457]
    results = inference_detector(onnx_model, [image, image[:200, :333]])
    assert [r.metainfo['ori_shape'] for r in results] == [image.shape[:2], (200, 333)]
    assert all(len(r.pred_instances) == 200 for r in results)


# --------------------------------------------- detection: clipped to each image before NMS
@pytest.mark.slow
def test_padded_mixed_batch_suppresses_border_boxes_as_pytorch(tmp_path):
    """RetinaNet (its inputs padded to multiples of 32): two images of other sizes in one
    padded batch. Boxes are clipped to each image before NMS, as mmdet does, so the graph
    keeps PyTorch's boxes; clipped to the padded batch instead (``img_shape`` not fed), NMS
    sees other overlaps at the images' borders and keeps other boxes."""
    from mmdet.structures import DetDataSample
    cfg, task, model = build_random(str(RETINA_TINY))
    with torch.no_grad():  # scores between ~0.3 and ~0.7: many boxes pass score_thr
        for name, param in model.bbox_head.named_parameters():
            if 'cls' in name:
                param.mul_(0.8)
    onnx_file = tmp_path / 'retina.onnx'
    export_model(cfg, task, copy.deepcopy(model), str(onnx_file), shape=(224, 224))
    onnx_model = init_onnx_model(str(RETINA_TINY), str(onnx_file))
    shapes = [(150, 200), (200, 130)]
    x = torch.zeros(2, 3, 224, 224)  # the data preprocessor pads with zeros to 224x224
    for i, (h, w) in enumerate(shapes):
        x[i, :, :h, :w] = torch.randn(3, h, w, generator=torch.Generator().manual_seed(i))
    samples = [DetDataSample(metainfo=dict(img_shape=s, ori_shape=s, scale_factor=(1., 1.),
                                           pad_shape=(224, 224), batch_input_shape=(224, 224)))
               for s in shapes]
    with torch.no_grad():
        expected = model.predict(x, copy.deepcopy(samples), rescale=False)
    found = onnx_model.predict(x, copy.deepcopy(samples), rescale=False)
    # Clipped to the padded batch, then to each image (the graph without img_shape).
    boxes, scores, labels, image = map(torch.from_numpy, onnx_model.session.run(
        None, {'input': x.numpy()}))
    for i, (h, w) in enumerate(shapes):
        ref, ours = expected[i].pred_instances, found[i].pred_instances
        at_border = ((ref.bboxes[:, 2] == w) | (ref.bboxes[:, 3] == h)).sum().item()
        assert at_border >= 5, f'image {i}: {at_border} boxes at its border: nothing tested'
        assert len(ours) == len(ref)
        assert len(unmatched(ours, ref, len(ref), score_atol=1e-4)) <= 0.05 * len(ref)
        from mmengine.structures import InstanceData
        keep = image == i
        padded = InstanceData(bboxes=boxes[keep].clone(), scores=scores[keep],
                              labels=labels[keep])
        padded.bboxes[:, 0::2].clamp_(0, w)
        padded.bboxes[:, 1::2].clamp_(0, h)
        assert len(unmatched(padded, ref, len(ref), score_atol=1e-4)) > 0.05 * len(ref), \
            'clipping after NMS gives the same boxes: the test shows nothing'


def test_box_coder_options_the_graph_does_not_compute_are_refused(tmp_path):
    cfg = Config.fromfile(str(RETINA_TINY))
    cfg.model.bbox_head.bbox_coder.add_ctr_clamp = True
    with pytest.raises(DeployError, match='add_ctr_clamp=True'):
        export_onnx(cfg, None, str(tmp_path / 'x.onnx'))
    cfg = Config.fromfile(str(RETINA_TINY))
    cfg.model.test_cfg.nms = dict(type='soft_nms', iou_threshold=0.5)
    with pytest.raises(DeployError, match="nms.type='soft_nms'"):
        export_onnx(cfg, None, str(tmp_path / 'x.onnx'))


# ------------------------------------------- no detection: empty results through every door
@pytest.fixture(scope='module')
def empty_ssd(tmp_path_factory, demo_data):
    """SSDLite-EMO-1M tiny (3 classes) whose background logit dominates: no score reaches
    score_thr. Saved as a checkpoint and exported by the tool, static (default) and dynamic."""
    tmp = tmp_path_factory.mktemp('empty_ssd')
    _, _, model = build_random(str(SSD_TINY))
    with torch.no_grad():
        for branch in model.bbox_head.cls_convs:
            branch[-1].bias.view(-1, model.bbox_head.cls_out_channels)[:, -1] += 20.
    checkpoint = tmp / 'empty.pth'
    torch.save(dict(state_dict=model.state_dict()), checkpoint)
    files = dict(static=tmp / 'static.onnx', dynamic=tmp / 'dynamic.onnx')
    tool = load_tool('export_onnx')
    for kind, out in files.items():
        argv = ['export_onnx.py', str(SSD_TINY), str(checkpoint), '--out', str(out)]
        sys.argv = argv + (['--dynamic'] if kind == 'dynamic' else [])
        tool.main()
    return dict(tmp=tmp, demo_data=demo_data, **files)


@pytest.mark.slow
def test_tool_exports_static_by_default_and_dynamic_on_request(empty_ssd, capsys):
    from emo_mm.deploy.metadata import read_metadata
    static, dynamic = (read_metadata(str(empty_ssd[k])) for k in ('static', 'dynamic'))
    assert static['input']['shape'] == [1, 3, 320, 320]
    assert dynamic['input']['shape'] == ['batch', 3, 'height', 'width']
    outputs = dynamic['session'].run(None, {'input': np.zeros((2, 3, 333, 417), np.float32)})
    assert outputs[0].shape == (0, 4)
    with pytest.raises(DeployError, match='resizes every image to 320x320.*--dynamic'):
        export_onnx(str(SSD_TINY), None, str(empty_ssd['tmp'] / 'x.onnx'), shape=(256, 320))
    with pytest.raises(DeployError, match='keeps the aspect ratio'):
        export_onnx(str(RETINA_TINY), None, str(empty_ssd['tmp'] / 'x.onnx'), dynamic=False)


@pytest.mark.slow
def test_no_detection_gives_empty_results_through_every_door(empty_ssd):
    from mmdet.apis import DetInferencer, inference_detector
    for kind in ('static', 'dynamic'):
        result = inference_detector(init_onnx_model(str(SSD_TINY), str(empty_ssd[kind])),
                                    str(PHOTO))
        assert len(result.pred_instances) == 0
        assert tuple(result.pred_instances.bboxes.shape) == (0, 4)
    cfg = Config.fromfile(str(SSD_TINY))
    use_onnx_model(cfg, str(empty_ssd['static']))
    inferencer = DetInferencer(model=cfg, weights=None, device='cpu', show_progress=False)
    prediction = inferencer(str(PHOTO), return_vis=True)
    assert prediction['predictions'][0]['bboxes'] == []
    assert prediction['visualization'][0].shape == mmcv.imread(str(PHOTO)).shape
    output = run_tool(python_tool('test.py', SSD_TINY, empty_ssd['static'], '--work-dir',
                                  empty_ssd['tmp'] / 'test', '--cfg-options',
                                  'test_dataloader.num_workers=0',
                                  'test_dataloader.persistent_workers=False'),
                      cwd=empty_ssd['demo_data'])
    assert 'The testing results of the whole dataset is empty' in output


@pytest.mark.slow
def test_one_onnxruntime_session_per_model(empty_ssd, monkeypatch):
    import onnxruntime
    opened = []
    real = onnxruntime.InferenceSession

    def counting(*args, **kwargs):
        opened.append(args[0])
        return real(*args, **kwargs)
    monkeypatch.setattr(onnxruntime, 'InferenceSession', counting)
    init_onnx_model(str(SSD_TINY), str(empty_ssd['static']))
    assert len(opened) == 1, opened
