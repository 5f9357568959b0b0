from .efficientmod import EfficientMod
from .emo import EMO

__all__ = ['EMO', 'EfficientMod']
