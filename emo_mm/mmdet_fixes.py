"""Fix for mmdet 3.3.0's ``SSDHead.predict``, applied without importing mmdet.

``BaseDenseHead._predict_by_feat_single`` asks ``getattr(self.loss_cls, 'custom_cls_channels',
False)``, but ``SSDHead`` computes its softmax cross-entropy inline and never sets ``loss_cls``,
so every SSD prediction (validation, ``tools/test.py``, ``inference_detector``,
``DetInferencer``) raises ``AttributeError: 'SSDHead' object has no attribute 'loss_cls'``
(open-mmlab/mmdetection#11063, #11305, #11780). The missing attribute is that one answer:
``loss_cls = None`` means "no custom class channels", so prediction takes the softmax branch,
which is SSD's (background last). It is set per instance after ``__init__``, so a subclass that
builds a real ``loss_cls`` module keeps it.

The fix is installed when ``emo_mm`` is imported: at once if mmdet's ``ssd_head`` module is
loaded already, otherwise right after Python loads it. Importing ``emo_mm`` therefore neither
needs nor imports mmdet (MMSegmentation-only installs are unaffected).
"""
import functools
import importlib.abc
import importlib.machinery
import sys
from types import ModuleType
from typing import Any, Optional, Sequence

SSD_HEAD_MODULE = 'mmdet.models.dense_heads.ssd_head'


def fix_ssd_head(ssd_head_cls: type) -> None:
    """Makes ``ssd_head_cls.__init__`` end with ``self.loss_cls = None`` when unset (idempotent).

    The original ``__init__`` stays reachable as ``ssd_head_cls.__init__.__wrapped__``.
    """
    original = ssd_head_cls.__init__
    if getattr(original, 'emo_mm_fix', False):
        return

    @functools.wraps(original)
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        if not hasattr(self, 'loss_cls'):
            self.loss_cls = None

    __init__.emo_mm_fix = True
    ssd_head_cls.__init__ = __init__


class _FixingLoader(importlib.abc.Loader):
    """Wraps mmdet's loader of ``ssd_head``: executes the module, then fixes ``SSDHead``."""

    def __init__(self, loader: importlib.abc.Loader) -> None:
        self.loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> Optional[ModuleType]:
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self.loader.exec_module(module)
        fix_ssd_head(module.SSDHead)

    def __getattr__(self, name: str) -> Any:  # get_source, get_filename, ... for tracebacks
        return getattr(self.loader, name)


class _FixOnImport(importlib.abc.MetaPathFinder):
    """Finds ``mmdet.models.dense_heads.ssd_head`` as usual and hands it a fixing loader."""

    def find_spec(self, fullname: str, path: Optional[Sequence[str]],
                  target: Optional[ModuleType] = None) -> Optional[importlib.machinery.ModuleSpec]:
        if fullname != SSD_HEAD_MODULE:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _FixingLoader(spec.loader)
        return spec


def install() -> None:
    """Fixes ``SSDHead`` now if mmdet has loaded it, else as soon as it is loaded."""
    if SSD_HEAD_MODULE in sys.modules:
        fix_ssd_head(sys.modules[SSD_HEAD_MODULE].SSDHead)
    elif not any(isinstance(finder, _FixOnImport) for finder in sys.meta_path):
        sys.meta_path.insert(0, _FixOnImport())


install()
