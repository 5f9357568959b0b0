"""Image files that cannot be read are named, through every door of our configs.

Our configs declare this module in ``custom_imports``. It registers
:class:`~emo_mm.datasets.transforms.CheckedLoadImageFromFile` (mmcv's loader, same arguments
and results, whose failures name the file and the cause) as ``LoadImageFromFile`` in mmdet's
and mmseg's transform registries, the scopes the configs use. The configs keep the name
``LoadImageFromFile``, by which mmdet's ``DetInferencer`` and mmseg's ``MMSegInferencer`` find
the loader (their ``InferencerLoader`` then builds ``LoadImageFromFile`` in that scope), so
``tools/test.py``, ``inference_detector``, ``inference_model`` and both inferencers all load
files with the checked loader. mmengine's root registry keeps mmcv's loader under that name,
and a loader mmdet or mmseg registered themselves is never replaced. ``import emo_mm`` alone
does not do this (nor import mmdet or mmseg).
"""
import importlib

from .transforms import CheckedLoadImageFromFile


def register_in_framework_scopes() -> None:
    """:class:`CheckedLoadImageFromFile` as ``LoadImageFromFile`` in the transform registries
    of mmdet and mmseg (where installed)."""
    for package in ('mmdet', 'mmseg'):
        try:
            registry = importlib.import_module(f'{package}.registry').TRANSFORMS
        except ImportError:
            continue
        if 'LoadImageFromFile' not in registry.module_dict:  # never replaces one of theirs
            registry.register_module(name='LoadImageFromFile', module=CheckedLoadImageFromFile)


register_in_framework_scopes()
