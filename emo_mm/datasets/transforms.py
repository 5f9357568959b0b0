"""Image loading that says what is wrong with an input, for the test pipelines of our configs.

mmcv's ``LoadImageFromFile`` fails on an empty file with OpenCV's ``!buf.empty()`` (no file
name) and on a file that is no image with ``failed to load image`` (no cause), and mmdet's /
mmseg's preprocessors fail deep inside on a grayscale or 4-channel array given to
``inference_detector`` / ``inference_model``. Hence two transforms:

* :class:`CheckedLoadImageFromFile`: mmcv's loader (same arguments, same results) whose
  failures name the file and the cause. Our configs declare
  :mod:`emo_mm.datasets.checked_loader` in ``custom_imports``, which registers it as
  ``LoadImageFromFile`` in mmdet's and mmseg's transform registries (see there).
* :class:`ToThreeChannels`, after the loader in our test pipelines (the APIs swap the loader for
  ``LoadImageFromNDArray`` when given an array; this then takes what the array holds).
"""
import os.path as osp
from typing import Optional

import numpy as np
from mmcv.transforms import BaseTransform, LoadImageFromFile
from mmengine.registry import TRANSFORMS


class ImageError(ValueError):
    """An image that cannot be used; the message names it and says what is expected."""


@TRANSFORMS.register_module()
class CheckedLoadImageFromFile(LoadImageFromFile):
    """mmcv's ``LoadImageFromFile`` (same arguments), whose failures name the file and why:
    missing, empty, or not a readable image."""

    def transform(self, results: dict) -> Optional[dict]:
        filename = results['img_path']
        try:
            loaded = super().transform(results)
        except FileNotFoundError:
            raise ImageError(f'image file not found: {filename}') from None
        except Exception as error:  # OpenCV's and mmcv's own errors name neither file nor cause
            if self.ignore_empty:
                return None
            shown = filename if osp.isabs(filename) else f'{filename} ({osp.abspath(filename)})'
            raise ImageError(f'cannot read the image {shown}: {_why(filename, error)}') from None
        return loaded


def _why(filename: str, error: Exception) -> str:
    try:
        with open(filename, 'rb') as f:
            size = len(f.read())
    except OSError as os_error:
        return str(os_error)
    if size == 0:
        return 'the file is empty (0 bytes)'
    if isinstance(error, AssertionError):  # mmcv's loader asserts that a decoder gave an image
        return f'not a decodable image ({size} bytes that no image decoder reads)'
    return f'not a decodable image ({type(error).__name__}: {str(error).strip()[:200]})'


@TRANSFORMS.register_module()
class ToThreeChannels(BaseTransform):
    """Makes ``results['img']`` an ``H x W x 3`` (BGR) image, as the models expect.

    A grayscale ``H x W`` or ``H x W x 1`` image is repeated to 3 channels; a 4-channel image is
    taken as BGRA (OpenCV's order) and loses its alpha channel; 3 channels pass unchanged.
    Anything else is refused, naming the shape.
    """

    def transform(self, results: dict) -> dict:
        img = results['img']
        if not isinstance(img, np.ndarray):
            raise ImageError(f'expected the image as a numpy array, got {type(img).__name__}')
        if img.ndim == 2:
            img = np.repeat(img[:, :, None], 3, axis=2)
        elif img.ndim == 3 and img.shape[2] == 1:
            img = np.repeat(img, 3, axis=2)
        elif img.ndim == 3 and img.shape[2] == 4:
            img = np.ascontiguousarray(img[:, :, :3])
        elif not (img.ndim == 3 and img.shape[2] == 3):
            raise ImageError(
                f'an image of shape {img.shape} ({_source(results)}) cannot be used: expected '
                f'H x W x 3 (BGR), or H x W / H x W x 1 (grayscale) or H x W x 4 (BGRA)')
        if img.size == 0:
            raise ImageError(f'the image ({_source(results)}) is empty: shape {img.shape}')
        results['img'] = img
        return results


def _source(results: dict) -> str:
    path = results.get('img_path')
    return f'from {path}' if path else 'an array'

