from mmengine.registry import MODELS

from .backbones import EMO, EMOv2, EfficientMod

# Registered once, in mmengine's root registry: mmdet's and mmseg's MODELS registries are its
# children and fall back to it, so `type='EMO'` (or 'EMOv2', 'EfficientMod') resolves in either
# scope.
MODELS.register_module(module=EMO)
MODELS.register_module(module=EMOv2)
MODELS.register_module(module=EfficientMod)

__all__ = ['EMO', 'EMOv2', 'EfficientMod']
