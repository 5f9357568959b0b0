"""Keeps BatchNorm's running statistics equal in every process of a CPU run.

SyncBN needs GPUs; without one, :func:`emo_mm.engine.cpu_distributed.adapt_to_cpu` trains with
per-process BN, and each process would then accumulate running statistics of its own images
only. Evaluation during training (each process evaluating its share of the images with its own
statistics) would then disagree with the checkpoint (which holds rank 0's), and so would every
process's model. This hook takes, after every training iteration, the mean of the processes'
running statistics: every process, and every checkpoint, then holds the running means that
SyncBN would have accumulated (the running variances leave out the spread between the
processes' batch means). Training itself is unchanged: in train mode BN uses batch statistics.
"""
from typing import List

import torch
from mmengine.dist import all_reduce_params, is_distributed
from mmengine.hooks import Hook
from mmengine.registry import HOOKS
from torch.nn.modules.batchnorm import _BatchNorm


def running_statistics(model: torch.nn.Module) -> List[torch.Tensor]:
    """The ``running_mean`` / ``running_var`` buffers of every BatchNorm in ``model``."""
    return [buffer for module in model.modules() if isinstance(module, _BatchNorm)
            for buffer in (module.running_mean, module.running_var) if buffer is not None]


@HOOKS.register_module()
class AverageBatchNormStatsHook(Hook):
    """After every training iteration, each BatchNorm's running statistics become their mean
    over the processes (a no-op in a single process)."""

    priority = 'ABOVE_NORMAL'  # before CheckpointHook (VERY_LOW) saves the iteration's state

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if is_distributed():
            stats = running_statistics(runner.model)
            if stats:
                all_reduce_params(stats, op='mean')
