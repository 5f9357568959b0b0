"""A tiny, deterministic ADE20K-format segmentation dataset of large textured shapes.

Every image is a brick-textured wall with two to four large shapes (ellipse, rectangle,
triangle, possibly overlapping) of grass, car paint or water, each class with its own colour
family and texture, so a segmentor learns it from scratch within minutes on a CPU. The label
maps are real ADE20K label maps: pixel values are ADE20K's class ids (wall 1, grass 10, car 21,
water 22) and 0 marks unlabelled pixels, here a thin band along every visible boundary between
two classes, as in ADE20K's annotations. The layout is mmseg's ``ADE20KDataset``'s::

    root/images/training/000000.jpg      root/annotations/training/000000.png
    root/images/validation/000000.jpg    root/annotations/validation/000000.png

so a config changes its ``data_root`` and names the classes present in ``metainfo``
(``dict(classes=CLASSES)``): mmseg then maps ADE20K's ids onto ``0 .. len(CLASSES) - 1`` after
``reduce_zero_label`` (0 -> 255, ignored). Train and validation images come from different
random streams (held-out evaluation).
"""
from pathlib import Path
from typing import Callable, Dict, Tuple, Union

import cv2
import numpy as np

# The classes, in ADE20K's order, with their ids in ADE20K's label maps (0 = unlabelled).
ADE20K_IDS: Dict[str, int] = {'wall': 1, 'grass': 10, 'car': 21, 'water': 22}
CLASSES: Tuple[str, ...] = tuple(ADE20K_IDS)
BACKGROUND = 'wall'
SHAPE_CLASSES: Tuple[str, ...] = tuple(c for c in CLASSES if c != BACKGROUND)
SPLITS: Tuple[str, ...] = ('training', 'validation')
UNLABELLED_BAND = 1  # label 0 within this many pixels of a visible class boundary

Texture = Callable[[np.random.RandomState, int, int], np.ndarray]


def _jitter(rng: np.random.RandomState, bgr: Tuple[int, int, int], amount: int) -> np.ndarray:
    return np.clip(np.array(bgr, np.float32) + rng.uniform(-amount, amount, 3), 0, 255)


def _wall(rng: np.random.RandomState, h: int, w: int) -> np.ndarray:
    """Beige bricks: dark mortar lines every 16 px, every other row of bricks shifted."""
    image = np.broadcast_to(_jitter(rng, (150, 185, 210), 15), (h, w, 3)).copy()
    yy, xx = np.mgrid[:h, :w]
    shift = (yy // 16 % 2) * 16
    image[(yy % 16 < 2) | ((xx + shift) % 32 < 2)] *= 0.6
    return image


def _grass(rng: np.random.RandomState, h: int, w: int) -> np.ndarray:
    """Green with short vertical blades: noise smoothed along the columns only."""
    blades = cv2.blur(rng.uniform(-1, 1, (h, w)).astype(np.float32), (1, 7))
    return _jitter(rng, (40, 150, 60), 15) * (1 + 0.8 * blades[..., None])


def _car(rng: np.random.RandomState, h: int, w: int) -> np.ndarray:
    """Glossy red with dark diagonal stripes 12 px apart."""
    yy, xx = np.mgrid[:h, :w]
    stripes = ((xx + yy) % 12 < 3)[..., None]
    return _jitter(rng, (40, 30, 200), 15) * np.where(stripes, 0.45, 1.0)


def _water(rng: np.random.RandomState, h: int, w: int) -> np.ndarray:
    """Blue with horizontal sine waves."""
    yy, xx = np.mgrid[:h, :w]
    period, phase = rng.uniform(8, 14), rng.uniform(0, 2 * np.pi)
    waves = np.sin(2 * np.pi * (yy + 3 * np.sin(xx / 9.0)) / period + phase)
    return _jitter(rng, (200, 120, 30), 15) * (1 + 0.3 * waves[..., None])


TEXTURES: Dict[str, Texture] = {'wall': _wall, 'grass': _grass, 'car': _car, 'water': _water}


def _shape_mask(rng: np.random.RandomState, h: int, w: int) -> np.ndarray:
    """A filled ellipse, rectangle or triangle spanning 30-60% of the shorter side."""
    mask = np.zeros((h, w), np.uint8)
    size = int(rng.uniform(0.3, 0.6) * min(h, w))
    cx, cy = (int(v) for v in rng.randint(size // 2, [w - size // 2, h - size // 2]))
    kind = rng.randint(3)
    if kind == 0:
        axes = (size // 2, int(size // 2 * rng.uniform(0.6, 1.0)))
        cv2.ellipse(mask, (cx, cy), axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
    elif kind == 1:
        cv2.rectangle(mask, (cx - size // 2, cy - size // 3), (cx + size // 2, cy + size // 3),
                      1, -1)
    else:
        corners = np.array([[cx, cy - size // 2], [cx - size // 2, cy + size // 2],
                            [cx + size // 2, cy + size // 2]], np.int32)
        cv2.fillPoly(mask, [corners], 1)
    return mask.astype(bool)


def _make_sample(rng: np.random.RandomState, h: int, w: int) -> Tuple[np.ndarray, np.ndarray]:
    """One BGR image and its ADE20K label map."""
    label = np.full((h, w), ADE20K_IDS[BACKGROUND], np.uint8)
    image = TEXTURES[BACKGROUND](rng, h, w)
    for _ in range(rng.randint(2, 5)):
        name = SHAPE_CLASSES[rng.randint(len(SHAPE_CLASSES))]
        mask = _shape_mask(rng, h, w)
        image[mask] = TEXTURES[name](rng, h, w)[mask]
        label[mask] = ADE20K_IDS[name]
    # Pixels whose neighbourhood holds two classes (max != min) are left unlabelled.
    band = np.ones((2 * UNLABELLED_BAND + 1, ) * 2, np.uint8)
    label[cv2.dilate(label, band) != cv2.erode(label, band)] = 0
    image += rng.normal(0, 6, image.shape)  # sensor noise
    return np.clip(image, 0, 255).astype(np.uint8), label


def make_tiny_ade(root: Union[str, Path], num_train: int = 24, num_val: int = 8,
                  image_size: Tuple[int, int] = (192, 256), seed: int = 0) -> Path:
    """Writes the dataset under ``root`` (same arguments, same bytes); returns ``root``.

    Args:
        root: output folder; created if missing, existing files are overwritten.
        num_train, num_val: images per split (at least 1 each).
        image_size: ``(H, W)`` of every image, each at least 64 pixels.
        seed: base of the random streams (training uses ``seed``, validation ``seed + 1``).
    """
    if num_train < 1 or num_val < 1:
        raise ValueError(f'num_train and num_val must be >= 1, got {num_train}, {num_val}')
    h, w = image_size
    if min(h, w) < 64:
        raise ValueError(f'image_size (H, W) must be at least 64 x 64, got {image_size}')
    root = Path(root)
    for offset, (split, count) in enumerate(zip(SPLITS, (num_train, num_val))):
        rng = np.random.RandomState(seed + offset)
        for folder in ('images', 'annotations'):
            (root / folder / split).mkdir(parents=True, exist_ok=True)
        for index in range(count):
            image, label = _make_sample(rng, h, w)
            cv2.imwrite(str(root / 'images' / split / f'{index:06d}.jpg'), image,
                        [cv2.IMWRITE_JPEG_QUALITY, 95])
            cv2.imwrite(str(root / 'annotations' / split / f'{index:06d}.png'), label)
    return root
