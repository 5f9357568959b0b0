"""Test helper loaded by a training subprocess (``custom_imports``): every rank saves its weights.

mmengine's checkpoints come from rank 0 only; comparing DDP replicas needs each rank's copy.
"""
import os.path as osp

import torch
from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS


@HOOKS.register_module()
class SaveReplicaWeightsHook(Hook):
    """After training, writes ``work_dir/replica_rank{rank}.pth`` (the unwrapped state dict)."""

    def after_train(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        torch.save(model.state_dict(), osp.join(runner.work_dir, f'replica_rank{get_rank()}.pth'))
