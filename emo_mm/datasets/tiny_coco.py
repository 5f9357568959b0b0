"""A tiny, deterministic COCO-format detection and instance-segmentation dataset of shapes.

Each image shows one to three large, non-overlapping shapes (circle, square, triangle), each
class in its own saturated colour family, on a low-contrast textured grey background, so a
detector learns it within minutes on a CPU. Every object has its box and its outline as a
polygon (``segmentation``, exact to the drawn pixels). The layout is COCO 2017's, so a config
only changes its ``data_root``::

    root/annotations/instances_train2017.json   root/train2017/000000.jpg ...
    root/annotations/instances_val2017.json     root/val2017/000000.jpg ...

Train and validation images come from different random streams (held-out evaluation).
"""
import json
from pathlib import Path
from typing import Dict, List, Tuple, Union

import cv2
import numpy as np

CLASSES: Tuple[str, ...] = ('circle', 'square', 'triangle')
# BGR colour of each class; every object's colour is jittered around it.
CLASS_COLOURS: Tuple[Tuple[int, int, int], ...] = ((40, 40, 220), (220, 80, 30), (30, 200, 60))
SPLITS: Tuple[str, ...] = ('train2017', 'val2017')

Box = Tuple[int, int, int, int]  # x, y, w, h in pixels


def _background(rng: np.random.RandomState, size: int) -> np.ndarray:
    """Grey texture: smooth noise plus faint stripes, at most ~40 grey levels of contrast."""
    coarse = rng.uniform(100, 150, size=(8, 8)).astype(np.float32)
    image = cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC)
    angle, period = rng.uniform(0, np.pi), rng.uniform(6, 20)
    yy, xx = np.mgrid[:size, :size]
    image += 8 * np.sin((xx * np.cos(angle) + yy * np.sin(angle)) * 2 * np.pi / period)
    image += rng.normal(0, 4, size=(size, size))
    return np.repeat(np.clip(image, 0, 255)[..., None], 3, axis=2).astype(np.uint8)


def _place(rng: np.random.RandomState, size: int, taken: List[Box]) -> Union[Box, None]:
    """A square box of side 25-50% of the image, 4 px away from every box in ``taken``."""
    for _ in range(50):
        side = int(rng.uniform(0.25, 0.5) * size)
        x, y = rng.randint(0, size - side + 1, size=2)
        if all(x + side + 4 <= bx or bx + bw + 4 <= x or y + side + 4 <= by or by + bh + 4 <= y
               for bx, by, bw, bh in taken):
            return int(x), int(y), side, side
    return None


def _draw(image: np.ndarray, label: int, box: Box, colour: Tuple[int, ...]) -> Box:
    """Draws class ``label`` filling ``box``; returns the shape's tight box."""
    x, y, side, _ = box
    if CLASSES[label] == 'circle':
        cv2.circle(image, (x + side // 2, y + side // 2), side // 2, colour, -1, cv2.LINE_AA)
        return x, y, side // 2 * 2, side // 2 * 2
    if CLASSES[label] == 'square':
        cv2.rectangle(image, (x, y), (x + side - 1, y + side - 1), colour, -1)
        return x, y, side, side
    points = np.array([[x + side // 2, y], [x, y + side - 1], [x + side - 1, y + side - 1]])
    cv2.fillPoly(image, [points], colour, cv2.LINE_AA)
    return x, y, side, side


def _outline(label: int, box: Box, circle_points: int = 64) -> List[float]:
    """The COCO polygon ``[x1, y1, x2, y2, ...]`` of the shape :func:`_draw` draws in ``box``.

    OpenCV fills the pixels whose centres (``i + 0.5`` in COCO's continuous coordinates) lie in
    the shape; the polygon is that shape's outline pushed out by half a pixel, so that it covers
    the filled pixels' area (pycocotools rasterises it back to the drawn pixels, IoU > 0.99).
    """
    x, y, side, _ = box
    if CLASSES[label] == 'square':
        points = np.array([[x, y], [x + side, y], [x + side, y + side], [x, y + side]], float)
    elif CLASSES[label] == 'circle':
        angles = np.arange(circle_points) * 2 * np.pi / circle_points
        centre, radius = np.array([x, y]) + side // 2 + 0.5, side // 2 + 0.5
        points = centre + radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    else:  # triangle: pixel-centre corners, scaled about the incentre to move each edge out 0.5
        corners = np.array([[x + side // 2, y], [x, y + side - 1], [x + side - 1, y + side - 1]],
                           float) + 0.5
        edges = np.linalg.norm(corners - np.roll(corners, -1, axis=0), axis=1)  # opposite 2, 0, 1
        opposite = np.roll(edges, -1)  # the edge opposite each corner
        incentre = opposite @ corners / opposite.sum()
        (ax, ay), (bx, by) = corners[1] - corners[0], corners[2] - corners[0]
        inradius = abs(ax * by - ay * bx) / edges.sum()  # area / semi-perimeter
        points = incentre + (corners - incentre) * (inradius + 0.5) / inradius
    return [round(float(v), 2) for v in points.ravel()]


def _make_split(root: Path, split: str, num_images: int, image_size: int, seed: int) -> Dict:
    """Writes the images of one split; returns its COCO dict."""
    rng = np.random.RandomState(seed)
    (root / split).mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for image_id in range(1, num_images + 1):
        image = _background(rng, image_size)
        taken: List[Box] = []
        for _ in range(rng.randint(1, 4)):
            box = _place(rng, image_size, taken)
            if box is None:
                continue
            taken.append(box)
            label = rng.randint(len(CLASSES))
            colour = tuple(int(c) for c in np.clip(
                np.array(CLASS_COLOURS[label]) + rng.randint(-30, 31, size=3), 0, 255))
            bx, by, bw, bh = _draw(image, label, box, colour)
            # `area` stays the box's: it sorts objects into COCO's size ranges, and the
            # detection numbers measured before the masks were added depend on it.
            annotations.append(dict(
                id=len(annotations) + 1, image_id=image_id, category_id=label + 1,
                bbox=[bx, by, bw, bh], area=bw * bh, iscrowd=0,
                segmentation=[_outline(label, box)]))
        file_name = f'{image_id:06d}.jpg'
        cv2.imwrite(str(root / split / file_name), image, [cv2.IMWRITE_JPEG_QUALITY, 95])
        images.append(dict(id=image_id, file_name=file_name, width=image_size,
                           height=image_size))
    categories = [dict(id=i + 1, name=name) for i, name in enumerate(CLASSES)]
    return dict(images=images, annotations=annotations, categories=categories)


def make_tiny_coco(root: Union[str, Path], num_train: int = 64, num_val: int = 24,
                   image_size: int = 256, seed: int = 0) -> Path:
    """Writes the dataset under ``root`` (same arguments, same bytes); returns ``root``.

    Args:
        root: output folder; created if missing, existing files are overwritten.
        num_train, num_val: images per split (at least 1 each).
        image_size: side of the square images in pixels (at least 64).
        seed: base of the random streams (train uses ``seed``, val ``seed + 1``).
    """
    if num_train < 1 or num_val < 1:
        raise ValueError(f'num_train and num_val must be >= 1, got {num_train}, {num_val}')
    if image_size < 64:
        raise ValueError(f'image_size must be >= 64 pixels, got {image_size}')
    root = Path(root)
    (root / 'annotations').mkdir(parents=True, exist_ok=True)
    for offset, (split, count) in enumerate(zip(SPLITS, (num_train, num_val))):
        coco = _make_split(root, split, count, image_size, seed + offset)
        with open(root / 'annotations' / f'instances_{split}.json', 'w') as f:
            json.dump(coco, f)
    return root
