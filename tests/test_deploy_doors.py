"""Exported models keep the file's class names and palette in every door.

The doors: ``inference_detector`` / ``inference_model`` (``init_onnx_model``), ``DetInferencer``
/ ``MMSegInferencer`` (a config made to run the file by ``use_onnx_model``; they assign COCO's
or Cityscapes' names to a model given no checkpoint) and ``tools/test.py CONFIG FILE.onnx``.
Each family (single-stage and two-stage detection, segmentation) with a 3-class model whose
names are neither COCO's nor Cityscapes': randomly initialised (class names need no training),
exported, and the texts the visualisers draw read back.
"""
from pathlib import Path
from typing import Dict, List

import mmcv
import pytest
from mmengine.config import Config

from conftest import CONFIGS, PHOTOS, helpers_on_pythonpath, python_tool, run_tool

import emo_mm  # noqa: F401  (registers EMO and the configs' modules)
from emo_mm.deploy import DeployError, export_onnx, init_onnx_model, use_onnx_model

SHAPES = ('circle', 'square', 'triangle')  # the tiny COCO's (configs' metainfo)
SEG_CLASSES = ('wall', 'grass', 'car')
SEG_PALETTE = [[120, 120, 120], [4, 200, 3], [0, 102, 200]]
# A three-class DeepLabv3 (the tiny config has four).
SEG_CONFIG = f"""_base_ = {str(CONFIGS / 'deeplabv3' / 'emo_1m_tiny.py')!r}
metainfo = dict(classes={SEG_CLASSES!r}, palette={SEG_PALETTE!r})
model = dict(decode_head=dict(num_classes=3), auxiliary_head=dict(num_classes=3))
test_dataloader = dict(dataset=dict(metainfo=metainfo))
"""
FAMILIES = {
    'single_stage': dict(config=CONFIGS / 'ssdlite' / 'emo_1m_tiny.py', classes=SHAPES),
    'two_stage': dict(config=CONFIGS / 'mask_rcnn' / 'emo_1m_tiny.py', classes=SHAPES,
                      shape=(96, 128)),
    'segmentation': dict(config=None, classes=SEG_CLASSES),
}
PHOTO = PHOTOS[0]


@pytest.fixture(scope='module')
def exported(tmp_path_factory) -> Dict[str, dict]:
    """Each family's 3-class model, random weights, exported once for the module."""
    tmp = tmp_path_factory.mktemp('doors')
    files = {}
    for family, spec in FAMILIES.items():
        config = spec['config']
        if config is None:
            config = tmp / 'deeplabv3_3_classes.py'
            config.write_text(SEG_CONFIG)
        onnx_file = tmp / f'{family}.onnx'
        meta = export_onnx(str(config), None, str(onnx_file), shape=spec.get('shape'))
        files[family] = dict(config=Path(config), onnx=onnx_file, meta=meta,
                             classes=spec['classes'])
    return files


def file_palette(entry: dict) -> List[tuple]:
    return [tuple(colour) for colour in entry['meta']['dataset_meta']['palette']]


def drawn_labels(texts: List[str]) -> List[str]:
    """Class names of box labels drawn as ``name: score``."""
    return [text.split(':')[0] for text in texts]


@pytest.mark.slow
@pytest.mark.parametrize('family', ['single_stage', 'two_stage'])
def test_inference_detector_draws_the_files_names(exported, family, tmp_path, monkeypatch):
    from mmdet.apis import inference_detector
    from mmdet.visualization import DetLocalVisualizer
    entry = exported[family]
    model = init_onnx_model(str(entry['config']), str(entry['onnx']))
    assert model.dataset_meta['classes'] == entry['classes']
    assert model.dataset_meta['palette'] == file_palette(entry)
    result = inference_detector(model, str(PHOTO))
    assert len(result.pred_instances) > 0, 'nothing detected: no label drawn to check'
    texts = []
    real = DetLocalVisualizer.draw_texts
    monkeypatch.setattr(DetLocalVisualizer, 'draw_texts',
                        lambda self, t, *a, **k: texts.append(t) or real(self, t, *a, **k))
    visualizer = DetLocalVisualizer(name=f'doors_{family}', save_dir=str(tmp_path))
    visualizer.dataset_meta = model.dataset_meta
    visualizer.add_datasample('photo', mmcv.imread(str(PHOTO), channel_order='rgb'), result,
                              draw_gt=False, pred_score_thr=0.)
    labels = drawn_labels(texts)
    assert labels and set(labels) <= set(entry['classes']), labels[:5]
    expected = {entry['classes'][i] for i in result.pred_instances.labels.tolist()}
    assert set(labels) == expected


@pytest.mark.slow
@pytest.mark.parametrize('family', ['single_stage', 'two_stage'])
def test_det_inferencer_keeps_and_draws_the_files_names(exported, family, tmp_path,
                                                       monkeypatch):
    from mmdet.apis import DetInferencer
    from mmdet.visualization import DetLocalVisualizer
    entry = exported[family]
    cfg = Config.fromfile(str(entry['config']))
    use_onnx_model(cfg, str(entry['onnx']))
    inferencer = DetInferencer(model=cfg, weights=None, device='cpu', show_progress=False)
    # DetInferencer assigned COCO's names: the model keeps the file's, and its palette.
    assert inferencer.model.dataset_meta['classes'] == entry['classes']
    assert inferencer.model.dataset_meta['palette'] == file_palette(entry)
    texts = []
    real = DetLocalVisualizer.draw_texts
    monkeypatch.setattr(DetLocalVisualizer, 'draw_texts',
                        lambda self, t, *a, **k: texts.append(t) or real(self, t, *a, **k))
    out = inferencer(str(PHOTO), out_dir=str(tmp_path / 'out'), pred_score_thr=0.,
                     return_datasamples=True)
    assert inferencer.visualizer.dataset_meta['classes'] == entry['classes']
    assert (tmp_path / 'out' / 'vis' / PHOTO.name).is_file()
    labels = drawn_labels(texts)
    found = out['predictions'][0].pred_instances
    assert len(found) > 0 and labels
    assert set(labels) == {entry['classes'][i] for i in found.labels.tolist()}


def _record_seg_labels(monkeypatch) -> List[str]:
    """The class names mmseg's visualiser writes on a picture (``cv2.putText``)."""
    from mmseg.visualization import local_visualizer
    texts = []
    real = local_visualizer.cv2.putText

    def recording(image, text, *args, **kwargs):
        texts.append(text)
        return real(image, text, *args, **kwargs)
    monkeypatch.setattr(local_visualizer.cv2, 'putText', recording)
    return texts


@pytest.mark.slow
def test_inference_model_draws_the_files_names(exported, tmp_path, monkeypatch):
    from mmseg.apis import inference_model
    from mmseg.visualization import SegLocalVisualizer
    entry = exported['segmentation']
    model = init_onnx_model(str(entry['config']), str(entry['onnx']))
    assert model.dataset_meta == dict(classes=SEG_CLASSES,
                                      palette=[tuple(c) for c in SEG_PALETTE])
    result = inference_model(model, str(PHOTO))
    texts = _record_seg_labels(monkeypatch)
    visualizer = SegLocalVisualizer(name='doors_seg', save_dir=str(tmp_path))
    visualizer.set_dataset_meta(**model.dataset_meta)
    visualizer.add_datasample('photo', mmcv.imread(str(PHOTO), channel_order='rgb'), result,
                              draw_gt=False, with_labels=True)
    present = {SEG_CLASSES[i] for i in result.pred_sem_seg.data.unique().tolist()}
    assert texts and set(texts) == present


@pytest.mark.slow
def test_mmseg_inferencer_keeps_and_draws_the_files_names(exported, tmp_path, monkeypatch):
    from mmseg.apis import MMSegInferencer
    entry = exported['segmentation']
    cfg = Config.fromfile(str(entry['config']))
    use_onnx_model(cfg, str(entry['onnx']))
    inferencer = MMSegInferencer(model=cfg, weights=None, device='cpu')
    # MMSegInferencer assigned Cityscapes' names and palette: the model keeps the file's.
    assert inferencer.model.dataset_meta == dict(classes=SEG_CLASSES,
                                                 palette=[tuple(c) for c in SEG_PALETTE])
    texts = _record_seg_labels(monkeypatch)
    out = inferencer(str(PHOTO), out_dir=str(tmp_path / 'out'), return_datasamples=True)
    assert inferencer.visualizer.dataset_meta['classes'] == SEG_CLASSES
    assert list(map(list, inferencer.visualizer.dataset_meta['palette'])) == SEG_PALETTE
    present = {SEG_CLASSES[i] for i in out.pred_sem_seg.data.unique().tolist()}
    assert texts and set(texts) == present
    assert (tmp_path / 'out' / 'vis' / PHOTO.name).is_file()


def test_assigned_names_do_not_replace_the_files(exported):
    """What the inferencers do to a model given no checkpoint, done by hand: the file's
    names and palette stay; keys the file does not decide are kept."""
    entry = exported['single_stage']
    model = init_onnx_model(str(entry['config']), str(entry['onnx']))
    model.dataset_meta = dict(classes=('person', 'bicycle', 'car'), palette='random',
                              source='assigned')
    model.dataset_meta['classes'] = ('changed', )  # a copy: the file decides
    assert model.dataset_meta == dict(classes=SHAPES, palette=file_palette(entry),
                                      source='assigned')


@pytest.mark.slow
def test_test_tool_draws_the_files_names(exported, demo_data, tmp_path):
    """tools/test.py --show-dir on the tiny COCO: every label drawn is one of the file's."""
    entry = exported['single_stage']
    config = tmp_path / 'recording.py'
    config.write_text(
        f"_base_ = {str(entry['config'])!r}\n"
        "custom_imports = dict(imports=['emo_mm', 'emo_mm.datasets.checked_loader', "
        "'emo_mm.models.dense_heads', 'drawn_texts'], allow_failed_imports=False)\n"
        "visualizer = dict(type='TextRecordingDetVisualizer')\n")
    texts = tmp_path / 'texts.txt'
    output = run_tool(python_tool('test.py', config, entry['onnx'], '--work-dir',
                                  tmp_path / 'work', '--show-dir', 'pictures', '--cfg-options',
                                  'test_dataloader.num_workers=0',
                                  'test_dataloader.persistent_workers=False'),
                      cwd=demo_data, env={**helpers_on_pythonpath(),
                                          'EMO_MM_DRAWN_TEXTS': str(texts)})
    assert 'coco/bbox_mAP' in output
    assert list((tmp_path / 'work').glob('*/pictures/*.jpg'))
    labels = drawn_labels(texts.read_text().splitlines())
    assert labels and set(labels) <= set(SHAPES), labels[:5]


@pytest.mark.parametrize('family', list(FAMILIES))
def test_a_config_naming_other_classes_is_refused(exported, family, tmp_path):
    """tools/test.py evaluates and draws with the test dataset's names: a file whose names
    differ (same number of classes) is refused, naming both."""
    entry = exported[family]
    config = tmp_path / 'renamed.py'
    config.write_text(f"_base_ = {str(entry['config'])!r}\n"
                      "test_dataloader = dict(dataset=dict(metainfo=dict(classes=('a', 'b', "
                      "'c'))))\n")
    with pytest.raises(DeployError, match=r"names its 3 classes \[.*\], but the test dataset "
                       r"of .* names them \['a', 'b', 'c'\]"):
        use_onnx_model(Config.fromfile(str(config)), str(entry['onnx']))
    output = run_tool(python_tool('test.py', config, entry['onnx']), cwd=tmp_path,
                      expect_ok=False)
    errors = [line for line in output.splitlines() if line.startswith('error: ')]
    assert len(errors) == 1 and 'names them' in errors[0] and 'Traceback' not in output
