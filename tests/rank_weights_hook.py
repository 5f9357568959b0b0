"""Test helper loaded by a training subprocess (``custom_imports``): every rank saves its weights.

mmengine's checkpoints come from rank 0 only; comparing DDP replicas needs each rank's copy.
Writes, in the work dir, ``start_rank{r}.pth`` / ``end_rank{r}.pth`` (the parameters before and
after training) and ``state_rank{r}.pth`` (the whole state dict after training, buffers too).
"""
import os.path as osp

import torch
from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS


@HOOKS.register_module()
class SaveRankWeightsHook(Hook):

    @staticmethod
    def _save(runner, what: dict, name: str) -> None:
        torch.save(what, osp.join(runner.work_dir, f'{name}_rank{get_rank()}.pth'))

    @staticmethod
    def _model(runner) -> torch.nn.Module:
        return runner.model.module if is_model_wrapper(runner.model) else runner.model

    def before_train(self, runner) -> None:
        weights = {k: v.detach().clone() for k, v in self._model(runner).named_parameters()}
        self._save(runner, weights, 'start')

    def after_train(self, runner) -> None:
        model = self._model(runner)
        self._save(runner, {k: v.detach().clone() for k, v in model.named_parameters()}, 'end')
        self._save(runner, model.state_dict(), 'state')
