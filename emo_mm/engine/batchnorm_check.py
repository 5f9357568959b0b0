"""A clear error, instead of a bare BatchNorm one, when a batch is too small for a pooled branch.

DeepLabv3's ASPP image-pool branch and PSPNet's pyramid scale 1 average every image to 1x1 and
then apply a BatchNorm. In training, BatchNorm needs more than one value per channel, so a batch
of one image fails deep inside PyTorch with ``Expected more than 1 value per channel when
training``. :class:`PooledBatchNormCheckHook` (in the segmentation configs' ``custom_hooks``)
checks those branches before they run and names the branch and the fix.

The branches are found by their structure (an ``nn.Sequential`` opening with an adaptive pool
and holding a BatchNorm), so nothing here imports mmseg.
"""
from typing import Any, List, Tuple

import torch.distributed as dist
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

ADAPTIVE_POOLS = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)


def pooled_batchnorm_branches(model: nn.Module) -> List[Tuple[str, nn.Sequential]]:
    """``(name, module)`` of every ``nn.Sequential`` that opens with an adaptive pool and
    holds a BatchNorm, e.g. ASPP's ``decode_head.image_pool``, PSP's ``psp_modules.0``."""
    return [(name, module) for name, module in model.named_modules()
            if isinstance(module, nn.Sequential) and len(module)
            and isinstance(module[0], ADAPTIVE_POOLS)
            and any(isinstance(m, _BatchNorm) for m in module.modules())]


def _pool_size(pool: nn.Module) -> Tuple[int, int]:
    size = pool.output_size
    height, width = (size, size) if isinstance(size, int) else size
    return height or 1, width or 1  # None keeps the input size: at least 1


def _synchronised(bn: _BatchNorm) -> bool:
    """Whether ``bn`` pools its statistics over several processes (then the batch may be 1)."""
    return isinstance(bn, nn.SyncBatchNorm) and dist.is_available() and dist.is_initialized() \
        and dist.get_world_size() > 1


def _make_check(name: str):

    def check(module: nn.Sequential, args: Tuple[Any, ...]) -> None:
        batchnorms = [m for m in module.modules() if isinstance(m, _BatchNorm) and m.training]
        if not batchnorms or all(_synchronised(bn) for bn in batchnorms):
            return
        batch, (height, width) = args[0].shape[0], _pool_size(module[0])
        if batch * height * width > 1:
            return
        raise ValueError(
            f'{name} pools every image to {height}x{width} and then applies BatchNorm '
            f'in training mode, which needs more than one value per channel; a batch of '
            f'{batch} image gives it exactly one. Train with at least 2 images per process '
            f'(train_dataloader.batch_size; the configs use 4), or with SyncBN over several '
            f'GPUs.')

    return check


def add_pooled_batchnorm_checks(model: nn.Module) -> List[str]:
    """Puts the batch-size check in front of every pooled BatchNorm branch of ``model``
    (once, however often it is called); returns the names of the branches checked."""
    if is_model_wrapper(model):
        model = model.module
    names = []
    for name, branch in pooled_batchnorm_branches(model):
        if not getattr(branch, '_emo_batch_checked', False):
            branch.register_forward_pre_hook(_make_check(name))
            branch._emo_batch_checked = True
        names.append(name)
    return names


@HOOKS.register_module()
class PooledBatchNormCheckHook(Hook):
    """Before training, adds :func:`add_pooled_batchnorm_checks` to the runner's model."""

    def before_train(self, runner) -> None:
        add_pooled_batchnorm_checks(runner.model)
