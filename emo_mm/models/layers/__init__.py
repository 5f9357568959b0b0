from .efficientmod import (Attention, AttentionBlock, AttentionMlp, ContextLayer,
                           EfficientModBlock, ModulationMlp, PatchEmbed)
from .irmb import (ConvNormAct, LayerNorm2d, SqueezeExcite, Stem, iRMB, window_partition,
                   window_reverse, window_tokens)

__all__ = ['ConvNormAct', 'LayerNorm2d', 'SqueezeExcite', 'Stem', 'iRMB', 'window_partition',
           'window_reverse', 'window_tokens', 'Attention', 'AttentionBlock', 'AttentionMlp',
           'ContextLayer', 'EfficientModBlock', 'ModulationMlp', 'PatchEmbed']
