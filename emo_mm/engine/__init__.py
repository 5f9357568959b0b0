from .batchnorm_check import PooledBatchNormCheckHook
from .rng_state_hook import RNGStateHook

__all__ = ['PooledBatchNormCheckHook', 'RNGStateHook']
