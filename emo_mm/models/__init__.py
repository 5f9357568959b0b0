from mmengine.registry import MODELS

from .backbones import EMO, EfficientMod

# Registered once, in mmengine's root registry: mmdet's and mmseg's MODELS registries are its
# children and fall back to it, so `type='EMO'` (or 'EfficientMod') resolves in either scope.
MODELS.register_module(module=EMO)
MODELS.register_module(module=EfficientMod)

__all__ = ['EMO', 'EfficientMod']
