from .efficientmod import (Attention, AttentionBlock, AttentionMlp, ContextLayer,
                           EfficientModBlock, ModulationMlp, PatchEmbed)
from .iirmb import (HybridWindowAttention, LayerScale2d, close_windows, emov2_stem, iiRMB,
                    remote_windows)
from .irmb import (ConvNormAct, LayerNorm2d, SqueezeExcite, Stem, iRMB, window_partition,
                   window_reverse, window_tokens)

__all__ = ['ConvNormAct', 'LayerNorm2d', 'SqueezeExcite', 'Stem', 'iRMB', 'window_partition',
           'window_reverse', 'window_tokens', 'Attention', 'AttentionBlock', 'AttentionMlp',
           'ContextLayer', 'EfficientModBlock', 'ModulationMlp', 'PatchEmbed',
           'HybridWindowAttention', 'LayerScale2d', 'close_windows', 'emov2_stem', 'iiRMB',
           'remote_windows']
