"""Images a user can hand our configs' inference APIs and tools: grayscale and BGRA arrays work,
anything else, and files that cannot be read, fail naming the problem."""
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import CONFIGS, python_tool, run_tool
from mmengine.config import Config

from emo_mm.datasets.tiny_ade import make_tiny_ade
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


@pytest.mark.parametrize('framework', ('mmdet', 'mmseg'))
@pytest.mark.parametrize('content,why', ((b'', 'the file is empty (0 bytes)'),
                                         (b'\xff\xd8 not really a jpeg', 'not a decodable image')))
def test_unreadable_image_files_are_named(models, framework, tmp_path, content, why):
    path = tmp_path / 'photo.jpg'
    path.write_bytes(content)
    with pytest.raises(ImageError, match='cannot read the image') as error:
        infer(models, framework, str(path))
    assert str(path) in str(error.value) and why in str(error.value)


def test_an_empty_image_in_a_test_set_names_the_file_through_the_test_tool(tmp_path):
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS
    root = make_tiny_ade(tmp_path / 'data' / 'tiny_ade', num_train=1, num_val=2)
    broken = sorted((root / 'images' / 'validation').glob('*.jpg'))[0]
    broken.write_bytes(b'')
    init_default_scope('mmseg')
    torch.save({'state_dict': MODELS.build(Config.fromfile(str(TINY['mmseg'])).model).state_dict()},
               tmp_path / 'model.pth')
    output = run_tool(python_tool('test.py', TINY['mmseg'], tmp_path / 'model.pth'),
                      cwd=tmp_path, expect_ok=False)
    assert f'({broken}): the file is empty (0 bytes)' in output
