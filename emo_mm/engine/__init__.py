from .batchnorm_check import PooledBatchNormCheckHook
from .batchnorm_stats import AverageBatchNormStatsHook
from .rng_state_hook import RNGStateHook

__all__ = ['AverageBatchNormStatsHook', 'PooledBatchNormCheckHook', 'RNGStateHook']
