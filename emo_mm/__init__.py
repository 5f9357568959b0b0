"""emo-mm: efficient attention-era backbones for MMDetection 3.x and MMSegmentation 1.x."""
from . import third_party_warnings  # noqa: F401  (first: before mmengine is imported)
from .version import __version__
from . import compat  # noqa: F401  (makes mmengine checkpoints loadable on torch >= 2.6)
from . import engine  # noqa: F401  (registers RNGStateHook, PooledBatchNormCheckHook)
from .datasets import transforms  # noqa: F401  (CheckedLoadImageFromFile, ToThreeChannels)
from .models import EMO, EMOv2, EfficientMod

__all__ = ['EMO', 'EMOv2', 'EfficientMod', '__version__']
