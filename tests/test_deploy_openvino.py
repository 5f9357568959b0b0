"""OpenVINO as a second runtime of the exported files (``backend='openvino'``).

* chosen the same way in every door (``init_onnx_model``, ``use_onnx_model`` for the
  inferencers, ``tools/test.py --backend openvino``), through the same wrappers, pipelines and
  metadata checks; without ``openvino`` one line naming the install;
* random weights, every family: OpenVINO's outputs are onnxruntime's (logits to float32
  rounding, boxes matched as the PyTorch parity tests match them), an optional input left out
  takes the file's default in both;
* the demo's learned models: ``tools/test.py`` gives the same metrics with either runtime, and
  the inference APIs the same boxes / label maps on photos of odd sizes.
"""
from pathlib import Path
from typing import Dict

import numpy as np
import pytest
import torch
from mmengine.config import Config

from conftest import (CONFIGS, PHOTOS, assert_close, odd_photos, python_tool, run_tool,
                      unmatched)
from test_deploy import export_and_test, metric, same_label_maps_on_odd_photos

import emo_mm  # noqa: F401  (registers EMO and the configs' modules)
from emo_mm.deploy import DeployError, export_onnx, init_onnx_model, use_onnx_model
from emo_mm.deploy.session import open_session


SSD_TINY = CONFIGS / 'ssdlite' / 'emo_1m_tiny.py'
DL_TINY = CONFIGS / 'deeplabv3' / 'emo_1m_tiny.py'
RANDOM = {  # family: (config, traced shape, run shape)
    'ssdlite': (SSD_TINY, None, (1, 3, 320, 320)),
    'retinanet': (CONFIGS / 'retinanet' / 'emo_1m_tiny.py', (128, 160), (2, 3, 160, 224)),
    'mask_rcnn': (CONFIGS / 'mask_rcnn' / 'emo_1m_tiny.py', (96, 128), (2, 3, 128, 160)),
    'deeplabv3': (DL_TINY, None, (2, 3, 160, 224)),
}


@pytest.fixture(scope='module')
def random_files(tmp_path_factory) -> Dict[str, Path]:
    tmp = tmp_path_factory.mktemp('openvino')
    files = {}
    for family, (config, shape, _) in RANDOM.items():
        files[family] = tmp / f'{family}.onnx'
        export_onnx(str(config), None, str(files[family]), shape=shape)
    return files


def _instances(outputs, image: int):
    from mmengine.structures import InstanceData
    boxes, scores, labels, batch_index = (torch.from_numpy(o) for o in outputs[:4])
    keep = batch_index == image
    return InstanceData(bboxes=boxes[keep], scores=scores[keep], labels=labels[keep])


@pytest.mark.slow
@pytest.mark.parametrize('family', list(RANDOM))
def test_openvino_gives_onnxruntimes_outputs(random_files, family):
    """Random weights, batch and size other than the traced ones for dynamic graphs; with
    ``img_shape`` fed (each image smaller than the batch) and left to its default."""
    ort = open_session(str(random_files[family]), 'onnxruntime')
    ov = open_session(str(random_files[family]), 'openvino')
    assert (ov.required_inputs, ov.optional_inputs, ov.output_names) == \
        (ort.required_inputs, ort.optional_inputs, ort.output_names)
    assert ov.metadata == ort.metadata
    shape = RANDOM[family][2]
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(1)).numpy()
    feeds = [{'input': x}]
    if ov.optional_inputs:  # detection: img_shape
        sizes = [[shape[2] - 8 * i, shape[3] - 16 * i] for i in range(shape[0])]
        feeds.append({'input': x, 'img_shape': np.array(sizes, np.int64)})
    for feed in feeds:
        expected, found = ort.run(None, feed), ov.run(None, feed)
        assert [f.shape[1:] for f in found] == [e.shape[1:] for e in expected]
        if family == 'deeplabv3':
            assert_close(torch.from_numpy(found[0]), torch.from_numpy(expected[0]), 'logits')
            agree = (found[1] == expected[1]).mean()
            assert agree >= 0.999, f'label maps agree on {agree:.4%} of pixels'
            continue
        for image in range(shape[0]):
            ref, ours = _instances(expected, image), _instances(found, image)
            assert len(ref) > 0 and abs(len(ours) - len(ref)) <= 0.05 * len(ref)
            # Random weights: near-equal scores tie, as in the PyTorch parity tests.
            missing = unmatched(ours, ref, top=len(ref), score_atol=1e-4)
            assert len(missing) <= 0.05 * len(ref), f'{len(missing)} of {len(ref)} boxes'


@pytest.mark.slow
def test_every_door_takes_the_backend(random_files, tmp_path):
    from mmdet.apis import DetInferencer, inference_detector
    model = init_onnx_model(str(SSD_TINY), str(random_files['ssdlite']), backend='openvino')
    assert model.session.backend == 'openvino'
    ours = inference_detector(model, str(PHOTOS[0])).pred_instances
    reference = inference_detector(init_onnx_model(str(SSD_TINY), str(random_files['ssdlite'])),
                                   str(PHOTOS[0])).pred_instances
    assert len(unmatched(ours, reference, top=len(reference), score_atol=1e-4)) <= \
        0.05 * len(reference)
    cfg = Config.fromfile(str(SSD_TINY))
    use_onnx_model(cfg, str(random_files['ssdlite']), backend='openvino')
    assert cfg.model.backend == 'openvino'
    inferencer = DetInferencer(model=cfg, weights=None, device='cpu', show_progress=False)
    assert inferencer.model.session.backend == 'openvino'
    assert inferencer.model.dataset_meta['classes'] == ('circle', 'square', 'triangle')
    seg = init_onnx_model(str(DL_TINY), str(random_files['deeplabv3']), backend='openvino')
    assert seg.session.backend == 'openvino'
    two_stage = init_onnx_model(str(RANDOM['mask_rcnn'][0]), str(random_files['mask_rcnn']),
                                backend='openvino')
    assert two_stage.session.backend == 'openvino'


def test_unknown_backend_is_named():
    with pytest.raises(DeployError, match="unknown runtime backend 'tensorrt'; choose one of "
                       'onnxruntime, openvino'):
        use_onnx_model(Config.fromfile(str(SSD_TINY)), 'x.onnx', backend='tensorrt')


def test_without_openvino_one_line_names_the_install(monkeypatch, tmp_path):
    import sys
    monkeypatch.setitem(sys.modules, 'openvino', None)  # `import openvino` fails
    with pytest.raises(DeployError) as error:
        init_onnx_model(str(SSD_TINY), str(tmp_path / 'x.onnx'), backend='openvino')
    assert str(error.value) == ('running .onnx models with openvino needs openvino: '
                                '`pip install emo-mm[openvino]` (or `pip install onnx openvino`)')


@pytest.mark.slow
def test_test_tool_without_openvino_says_one_line(tmp_path):
    """A stand-in ``openvino`` package that fails to import, first on the path."""
    fake = tmp_path / 'no_openvino' / 'openvino'
    fake.mkdir(parents=True)
    (fake / '__init__.py').write_text("raise ImportError('No module named openvino')\n")
    output = run_tool(python_tool('test.py', SSD_TINY, tmp_path / 'x.onnx', '--backend',
                                  'openvino'), cwd=tmp_path, expect_ok=False,
                      env={'PYTHONPATH': str(fake.parent)})
    errors = [line for line in output.splitlines() if line.startswith('error: ')]
    assert errors == ['error: running .onnx models with openvino needs openvino: '
                      '`pip install emo-mm[openvino]` (or `pip install onnx openvino`)'], output
    assert 'Traceback' not in output
    output = run_tool(python_tool('test.py', SSD_TINY, tmp_path / 'x.pth', '--backend',
                                  'openvino'), cwd=tmp_path, expect_ok=False)
    assert 'error: --backend openvino runs an exported .onnx file' in output


# ------------------------------------------------ the demo's learned models, parity
def openvino_test(tmp_path_factory, run: dict, name: str) -> str:
    """tools/test.py --backend openvino on a learned model's .onnx (once per run)."""
    from conftest import once_per_run

    def make(folder: Path) -> dict:
        return dict(log=run_tool(python_tool('test.py', run['config'], run['onnx'], '--backend',
                                             'openvino', '--work-dir', folder / 'test'),
                                 cwd=run['cwd']))
    return once_per_run(tmp_path_factory, f'{name}_openvino', make)['log']


@pytest.fixture(scope='module')
def ssd_run(tmp_path_factory, learned_ssdlite, learned_ssdlite_tested, demo_data) -> dict:
    run = export_and_test(tmp_path_factory, learned_ssdlite, learned_ssdlite_tested, demo_data,
                          'ssd')
    return {**run, 'config': SSD_TINY}


@pytest.fixture(scope='module')
def seg_run(tmp_path_factory, learned_deeplabv3, learned_deeplabv3_tested, demo_data) -> dict:
    run = export_and_test(tmp_path_factory, learned_deeplabv3, learned_deeplabv3_tested,
                          demo_data, 'seg')
    return {**run, 'config': DL_TINY}


def test_openvino_detector_evaluates_to_onnxruntimes_map(tmp_path_factory, ssd_run):
    log = openvino_test(tmp_path_factory, ssd_run, 'ssd')
    for key in ('bbox_mAP', 'bbox_mAP_50', 'bbox_mAP_75'):
        ort, ov = metric(ssd_run['onnx_log'], f'coco/{key}'), metric(log, f'coco/{key}')
        print(f'{key}: onnxruntime {ort:.3f}, OpenVINO {ov:.3f}')
        assert abs(ort - ov) <= 0.005
    assert metric(log, 'coco/bbox_mAP') >= 0.5  # a learned model: the tolerance is small


def test_openvino_segmentor_evaluates_to_onnxruntimes_miou(tmp_path_factory, seg_run):
    log = openvino_test(tmp_path_factory, seg_run, 'seg')
    ort, ov = metric(seg_run['onnx_log'], 'mIoU'), metric(log, 'mIoU')
    print(f'mIoU: onnxruntime {ort:.2f}, OpenVINO {ov:.2f}')
    assert ov >= 70 and abs(ort - ov) <= 0.3


def test_openvino_detector_in_mmdets_apis_on_odd_sized_photos(ssd_run, tmp_path):
    from mmdet.apis import inference_detector
    ours = init_onnx_model(str(SSD_TINY), str(ssd_run['onnx']), backend='openvino')
    theirs = init_onnx_model(str(SSD_TINY), str(ssd_run['onnx']))
    compared = 0
    for path in odd_photos(tmp_path):
        found = inference_detector(ours, str(path)).pred_instances
        ref = inference_detector(theirs, str(path)).pred_instances
        assert not unmatched(found, ref, top=100), path.name
        assert not unmatched(ref, found, top=100), path.name
        compared += min(100, len(ref))
    assert compared > 0, 'no detections on any photo: nothing was compared'


def test_openvino_segmentor_in_mmsegs_apis_on_odd_sized_photos(seg_run, tmp_path):
    ours = init_onnx_model(str(DL_TINY), str(seg_run['onnx']), backend='openvino')
    theirs = init_onnx_model(str(DL_TINY), str(seg_run['onnx']))
    same_label_maps_on_odd_photos(ours, theirs, tmp_path)


@pytest.mark.slow
def test_benchmark_times_each_file_in_both_runtimes(tmp_path):
    """The --deploy runtime comparison runs, each file in its own process (one call per round;
    its figures are not asserted: timings belong to an idle machine)."""
    from conftest import load_tool
    bench = load_tool('deploy_benchmark')
    Exports, compare_runtimes, format_runtimes = (bench.Exports, bench.compare_runtimes,
                                                  bench.format_runtimes)
    models = (('SSDLite-EMO-1M tiny', str(SSD_TINY), (320, 320)),
              ('DeepLabv3-EMO-1M tiny', str(DL_TINY), (192, 192)))
    rows = compare_runtimes(Exports(str(tmp_path)), models=models, threads=(1, ), rounds=1,
                            calls=1, warmup=0)
    assert [(r['model'], r['threads']) for r in rows] == [(m[0], 1) for m in models]
    assert all(r['onnxruntime'] > 0 and r['openvino'] > 0 and
               r['speedup']['openvino'] == r['onnxruntime'] / r['openvino'] for r in rows)
    table = format_runtimes(rows, ('onnxruntime', 'openvino')).splitlines()
    assert 'onnxruntime / openvino' in table[0] and len(table) == 3
