"""Detection heads; they need mmdet. Configs import this module through ``custom_imports``."""
from .ssd_head import FixedSSDHead

__all__ = ['FixedSSDHead']
