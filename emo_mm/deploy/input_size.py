"""The one input size a config's test pipeline gives every image, when it gives them one.

SSDLite's test pipeline resizes every image to 320x320 without keeping the aspect ratio, so its
graph can be traced for that size alone (no shape arithmetic left in it); RetinaNet's and the
segmentors' pipelines keep the aspect ratio, so their inputs vary and their graphs stay dynamic.
"""
import math
from typing import List, Optional, Tuple

from mmengine.config import Config

# Transforms (by type name) that may change an image's size.
SIZE_CHANGING = ('Resize', 'Rescale', 'Crop', 'Pad', 'Expand', 'Affine', 'Mosaic', 'MixUp',
                 'TestTimeAug', 'MultiScaleFlipAug')


def test_pipeline(cfg: Config) -> List[dict]:
    """The test dataset's pipeline (also inside a wrapper dataset), as the inference APIs
    find it; ``[]`` if the config has none."""
    dataset = cfg.get('test_dataloader', {}).get('dataset', {})
    while 'pipeline' not in dataset and isinstance(dataset.get('dataset'), dict):
        dataset = dataset['dataset']
    return list(dataset.get('pipeline') or [])


def fixed_input_size(cfg: Config) -> Optional[Tuple[int, int]]:
    """``(height, width)`` of every preprocessed test batch image when the test pipeline
    resizes every image to one size: its only size-changing transform is a ``Resize`` with
    ``keep_ratio=False`` and a fixed ``scale`` (padded to the data preprocessor's
    ``pad_size_divisor``). ``None`` when sizes vary (aspect ratio kept, crops, no pipeline)."""
    changing = [t for t in test_pipeline(cfg)
                if any(word in str(t.get('type', '')) for word in SIZE_CHANGING)]
    if len(changing) != 1:
        return None
    resize = changing[0]
    scale = resize.get('scale')
    if resize.get('type') != 'Resize' or resize.get('keep_ratio', False) or scale is None or \
            resize.get('scale_factor') is not None:
        return None
    width, height = (scale, scale) if isinstance(scale, int) else tuple(scale)  # mmcv: (w, h)
    preprocessor = cfg.get('model', {}).get('data_preprocessor') or {}
    divisor = int(preprocessor.get('pad_size_divisor') or 1)
    if preprocessor.get('size') is not None or preprocessor.get('size_divisor'):
        return None  # mmseg-style padding: not decided here
    return (math.ceil(height / divisor) * divisor, math.ceil(width / divisor) * divisor)
