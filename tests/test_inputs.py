"""Images a user can hand our configs' inference APIs: grayscale and BGRA arrays work, other
channel counts fail naming the shape; empty and unreadable image files fail in one line naming
the file and the cause, through tools/test.py, inference_detector, inference_model,
DetInferencer and MMSegInferencer."""
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import CONFIGS, python_tool, run_tool

from emo_mm.datasets.transforms import ImageError

TINY = {'mmdet': CONFIGS / 'ssdlite' / 'emo_1m_tiny.py',
        'mmseg': CONFIGS / 'deeplabv3' / 'emo_1m_tiny.py'}


@pytest.fixture
def models():
    """Untrained models of the tiny configs, through the frameworks' own init APIs; new for
    each test, since mmdet's inference_detector edits its model's config when given an array."""
    from mmdet.apis import init_detector
    from mmseg.apis import init_model
    torch.manual_seed(0)
    return {'mmdet': init_detector(str(TINY['mmdet']), None, device='cpu'),
            'mmseg': init_model(str(TINY['mmseg']), None, device='cpu')}


def infer(models, framework: str, image):
    from mmengine.registry import init_default_scope
    init_default_scope(framework)  # as init_detector / init_model leave it
    if framework == 'mmdet':
        from mmdet.apis import inference_detector
        return inference_detector(models['mmdet'], image)
    from mmseg.apis import inference_model
    return inference_model(models['mmseg'], image)


@pytest.mark.parametrize('framework', ('mmdet', 'mmseg'))
def test_grayscale_and_bgra_arrays_predict_like_their_bgr_image(models, framework):
    rng = np.random.default_rng(0)
    gray = rng.integers(0, 256, (90, 130), dtype=np.uint8)
    bgr = np.repeat(gray[:, :, None], 3, axis=2)
    bgra = np.concatenate([bgr, np.full((90, 130, 1), 255, np.uint8)], axis=2)
    expected = infer(models, framework, bgr)
    for image in (gray, gray[:, :, None], bgra):
        result = infer(models, framework, image)
        assert result.metainfo['ori_shape'] == (90, 130)
        if framework == 'mmdet':
            assert torch.equal(result.pred_instances.bboxes, expected.pred_instances.bboxes)
        else:
            assert torch.equal(result.pred_sem_seg.data, expected.pred_sem_seg.data)


@pytest.mark.parametrize('framework', ('mmdet', 'mmseg'))
@pytest.mark.parametrize('shape', ((90, 130, 2), (90, 130, 5), (90, 130, 3, 1)))
def test_other_channel_counts_are_refused_naming_the_shape(models, framework, shape):
    with pytest.raises(ImageError, match=r'cannot be used: expected H x W x 3') as error:
        infer(models, framework, np.zeros(shape, np.uint8))
    assert str(shape) in str(error.value)


UNREADABLE = ((b'', 'the file is empty (0 bytes)'),
              (b'\xff\xd8 not really a jpeg', 'not a decodable image'))


@pytest.mark.parametrize('content,why', UNREADABLE)
def test_checked_loader_names_unreadable_image_files(tmp_path, content, why):
    from emo_mm.datasets.transforms import CheckedLoadImageFromFile
    path = tmp_path / 'photo.jpg'
    path.write_bytes(content)
    with pytest.raises(ImageError, match='cannot read the image') as error:
        CheckedLoadImageFromFile()(dict(img_path=str(path)))
    assert str(path) in str(error.value) and why in str(error.value)


def test_our_scopes_load_files_with_the_checked_loader():
    """In the scopes our configs use (mmdet, mmseg), ``LoadImageFromFile`` is the checked
    loader; mmengine's root registry keeps mmcv's under that name."""
    from mmcv.transforms import LoadImageFromFile
    from mmengine.registry import TRANSFORMS, DefaultScope
    from emo_mm.datasets.transforms import CheckedLoadImageFromFile
    for scope in ('mmdet', 'mmseg'):
        with DefaultScope.overwrite_default_scope(scope):
            loader = TRANSFORMS.build(dict(type='LoadImageFromFile'))
        assert type(loader) is CheckedLoadImageFromFile, scope
    assert TRANSFORMS.get('LoadImageFromFile') is LoadImageFromFile


def _door(door: str, models, path: Path, tmp_path: Path):
    """Gives the image file ``path`` to one of the inference APIs of our tiny configs."""
    if door in ('inference_detector', 'inference_model'):
        return infer(models, 'mmdet' if door == 'inference_detector' else 'mmseg', str(path))
    if door == 'DetInferencer':
        from mmdet.apis import DetInferencer
        return DetInferencer(model=str(TINY['mmdet']), weights=None, device='cpu',
                             show_progress=False)(str(path), out_dir=str(tmp_path))
    from mmseg.apis import MMSegInferencer
    return MMSegInferencer(model=str(TINY['mmseg']), weights=None, device='cpu')(str(path))


@pytest.mark.parametrize('content,why', UNREADABLE)
@pytest.mark.parametrize('door', ('inference_detector', 'inference_model', 'DetInferencer',
                                  'MMSegInferencer'))
def test_unreadable_image_files_are_named_by_the_apis(models, tmp_path, door, content, why):
    path = tmp_path / 'photo.jpg'
    path.write_bytes(content)
    with pytest.raises(ImageError) as error:
        _door(door, models, path, tmp_path)
    message = str(error.value)
    assert message.startswith(f'cannot read the image {path}: {why}') and '\n' not in message


@pytest.mark.slow
@pytest.mark.parametrize('content,why', UNREADABLE)
def test_unreadable_image_files_are_named_by_the_test_tool(tmp_path, content, why):
    """tools/test.py on a dataset with an unreadable image (read in a DataLoader worker): one
    error line naming it, exit status 1, no traceback."""
    from mmdet.apis import init_detector
    from emo_mm.datasets.tiny_coco import make_tiny_coco
    make_tiny_coco(tmp_path / 'data' / 'tiny_coco', num_train=1, num_val=2, image_size=64)
    image = tmp_path / 'data' / 'tiny_coco' / 'val2017' / '000001.jpg'
    image.write_bytes(content)
    checkpoint = tmp_path / 'untrained.pth'
    torch.save({'state_dict': init_detector(str(TINY['mmdet']), None, device='cpu').state_dict()},
               checkpoint)
    output = run_tool(python_tool('test.py', TINY['mmdet'], checkpoint, '--work-dir', 'work'),
                      cwd=tmp_path, expect_ok=False)
    errors = [line for line in output.splitlines() if line.startswith('error: ')]
    assert len(errors) == 1 and errors[0].startswith(
        f'error: cannot read the image data/tiny_coco/val2017/000001.jpg ({image}): {why}'), \
        output[-2000:]
    assert 'Traceback' not in output and 'buf.empty' not in output


@pytest.mark.parametrize('framework', ('mmdet', 'mmseg'))
def test_inferencers_accept_our_test_pipelines(framework, tmp_path):
    """The frameworks' inferencers find the loader they replace in our configs' pipelines
    (by its name, ``LoadImageFromFile``)."""
    photo = Path(__file__).resolve().parents[1] / 'demo' / 'coffee.jpg'
    if framework == 'mmdet':
        from mmdet.apis import DetInferencer
        inferencer = DetInferencer(model=str(TINY['mmdet']), weights=None, device='cpu',
                                   show_progress=False)
        out = inferencer(str(photo), out_dir=str(tmp_path), no_save_pred=False)
        assert 'bboxes' in out['predictions'][0]
    else:
        from mmseg.apis import MMSegInferencer
        inferencer = MMSegInferencer(model=str(TINY['mmseg']), weights=None, device='cpu')
        out = inferencer(str(photo), return_datasamples=True)
        import cv2
        assert tuple(out.pred_sem_seg.data.shape[-2:]) == cv2.imread(str(photo)).shape[:2]
