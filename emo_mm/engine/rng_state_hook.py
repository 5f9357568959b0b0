"""Saves the random number generators' states with each checkpoint and restores them on resume.

mmengine re-seeds a resumed run from the start seed, so every random draw after the resume
(drop path masks, random augmentations in the main process) would differ from the run that was
interrupted. With this hook, an interrupted and resumed run is the same run: its final weights
equal those of an uninterrupted one (on CPU, where kernels are deterministic).

An iteration-based run resumes by drawing (and dropping) the batches already trained on; with
``num_workers=0`` those draws run the augmentations in the main process and use its random
generators. There the states are put back after that skip, just before the first new batch.
"""
import random
from typing import Any, Callable, Iterator, Optional

import numpy as np
import torch
from mmengine.hooks import Hook
from mmengine.registry import HOOKS


@HOOKS.register_module()
class RNGStateHook(Hook):
    """Stores python/numpy/torch RNG states in ``checkpoint['meta']['rng_state']``.

    The states are put back at ``before_train``, i.e. after everything a resume does (building
    the optimiser, re-seeding), just before the first iteration; in an iteration-based loop,
    once it has skipped the batches already trained on. Only tensors and plain Python
    values are stored, so the checkpoint stays loadable with ``torch.load(weights_only=True)``.
    In distributed runs the state of the rank that saves (rank 0) is restored on every rank.
    """

    priority = 'VERY_LOW'

    def __init__(self) -> None:
        self._pending: Optional[dict] = None

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        numpy_state = np.random.get_state()
        state = dict(
            python=random.getstate(),
            numpy=dict(name=numpy_state[0], key=torch.from_numpy(numpy_state[1].copy()),
                       pos=int(numpy_state[2]), has_gauss=int(numpy_state[3]),
                       cached_gaussian=float(numpy_state[4])),
            torch=torch.get_rng_state())
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state['cuda'] = torch.cuda.get_rng_state_all()
        checkpoint.setdefault('meta', {})['rng_state'] = state

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        self._pending = checkpoint.get('meta', {}).get('rng_state')

    def before_train(self, runner) -> None:
        if self._pending is None:
            return
        loop = runner.train_loop
        skipped = getattr(loop, 'iter', 0) if hasattr(loop, 'dataloader_iterator') else 0
        if skipped:  # IterBasedTrainLoop: restore once its skip of the trained batches is over
            state, self._pending = self._pending, None
            loop.dataloader_iterator = _AfterSkipping(
                loop.dataloader_iterator, skipped, lambda: self._restore(runner, state))
        else:
            self._restore(runner, self._pending)
            self._pending = None

    @staticmethod
    def _restore(runner, state: dict) -> None:
        random.setstate(state['python'])
        numpy_state = state['numpy']
        np.random.set_state((numpy_state['name'], numpy_state['key'].numpy(),
                             numpy_state['pos'], numpy_state['has_gauss'],
                             numpy_state['cached_gaussian']))
        torch.set_rng_state(state['torch'])
        if 'cuda' in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state['cuda'])
        runner.logger.info('RNGStateHook: restored the random states saved with the checkpoint')


class _AfterSkipping:
    """A dataloader iterator that calls ``action`` once, after its first ``skip`` batches and
    before the next one; it then hands out its wrapped iterator's batches unchanged."""

    def __init__(self, iterator: Iterator, skip: int, action: Callable[[], None]) -> None:
        self._iterator, self._skip, self._action = iterator, skip, action

    def __iter__(self) -> '_AfterSkipping':
        return self

    def __next__(self) -> Any:
        if self._skip == 0:
            self._action()
        self._skip -= 1
        return next(self._iterator)

    def __getattr__(self, name: str) -> Any:  # e.g. the wrapped iterator's ``_epoch``
        return getattr(self._iterator, name)
