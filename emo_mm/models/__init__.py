from mmengine.registry import MODELS

from .backbones import EMO

# Registered once, in mmengine's root registry: mmdet's and mmseg's MODELS registries are its
# children and fall back to it, so `type='EMO'` resolves in either scope.
MODELS.register_module(module=EMO)

__all__ = ['EMO']
