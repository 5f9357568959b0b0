"""Saves the random number generators' states with each checkpoint and restores them on resume.

mmengine re-seeds a resumed run from the start seed, so every random draw after the resume
(drop path masks, random augmentations in the main process) would differ from the run that was
interrupted. With this hook, an interrupted and resumed run is the same run: its final weights
equal those of an uninterrupted one (on CPU, where kernels are deterministic).
"""
import random
from typing import Optional

import numpy as np
import torch
from mmengine.hooks import Hook
from mmengine.registry import HOOKS


@HOOKS.register_module()
class RNGStateHook(Hook):
    """Stores python/numpy/torch RNG states in ``checkpoint['meta']['rng_state']``.

    The states are put back at ``before_train``, i.e. after everything a resume does (building
    the optimiser, re-seeding), just before the first iteration. Only tensors and plain Python
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
        state, self._pending = self._pending, None
        random.setstate(state['python'])
        numpy_state = state['numpy']
        np.random.set_state((numpy_state['name'], numpy_state['key'].numpy(),
                             numpy_state['pos'], numpy_state['has_gauss'],
                             numpy_state['cached_gaussian']))
        torch.set_rng_state(state['torch'])
        if 'cuda' in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state['cuda'])
        runner.logger.info('RNGStateHook: restored the random states saved with the checkpoint')
