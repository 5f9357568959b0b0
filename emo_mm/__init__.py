"""emo-mm: the EMO backbone for MMDetection 3.x and MMSegmentation 1.x."""
from .version import __version__
from . import compat  # noqa: F401  (makes mmengine checkpoints loadable on torch >= 2.6)
from . import mmdet_fixes  # noqa: F401  (mmdet 3.3's SSDHead.predict, fixed when mmdet loads it)
from . import engine  # noqa: F401  (registers RNGStateHook, PooledBatchNormCheckHook)
from .models import EMO

__all__ = ['EMO', '__version__']
