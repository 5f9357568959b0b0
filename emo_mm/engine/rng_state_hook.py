"""Saves the random number generators' states with each checkpoint and restores them on resume.

mmengine re-seeds a resumed run from the start seed, so every random draw after the resume
(drop path masks, random augmentations in the main process) would differ from the run that was
interrupted. With this hook, an interrupted and resumed run is the same run: its final weights
equal those of an uninterrupted one (on CPU, where kernels are deterministic).

An iteration-based run resumes by drawing (and dropping) the batches already trained on; with
``num_workers=0`` those draws run the augmentations in the main process and use its random
generators. There the states are put back after that skip, just before the first new batch.
"""
import io
import random
from typing import Any, Callable, Iterator, List, Optional, Tuple

import numpy as np
import torch
import torch.distributed as torch_dist
from mmengine.dist import get_dist_info
from mmengine.hooks import CheckpointHook, Hook
from mmengine.registry import HOOKS


@HOOKS.register_module()
class RNGStateHook(Hook):
    """Stores every rank's python/numpy/torch RNG states in ``checkpoint['meta']['rng_state']``.

    Each rank's states are gathered to the rank that saves (rank 0), as
    ``{'ranks': [state of rank 0, state of rank 1, ...]}``; a state holds the CPU generators and,
    where CUDA is in use, the current CUDA device's generator. On resume each rank puts its own
    state back at ``before_train``, i.e. after everything a resume does (building the optimiser,
    re-seeding), just before the first iteration; in an iteration-based loop, once it has
    skipped the batches already trained on.

    A resume with the same number of processes (and devices) continues the interrupted run
    exactly. With more processes, the ranks that had no saved state keep their seeded state;
    with fewer, the states of the missing ranks are unused; a CUDA state is not put back
    without CUDA. Such a resume runs, but is not the interrupted run; a log line says so.
    Only tensors and plain Python values are stored, so the checkpoint stays loadable with
    weights-only safety.
    """

    # mmengine saves checkpoints from rank 0 only (Runner.save_checkpoint is master_only), in
    # CheckpointHook's after_train_iter / after_train_epoch (priority VERY_LOW). Every rank must
    # hand its state over before that, so this hook runs just ahead of it (LOW): there it
    # gathers the states when a checkpoint is due; and at before_train it restores after every
    # hook of NORMAL or higher priority.
    priority = 'LOW'

    def __init__(self) -> None:
        self._pending: Optional[dict] = None
        self._gathered: Optional[Tuple[Tuple[int, int], List[dict]]] = None

    def after_train_iter(self, runner, batch_idx: int, data_batch: Any = None,
                         outputs: Any = None) -> None:
        if checkpoint_due(runner, by_epoch=False):
            self._gather(runner)

    def after_train_epoch(self, runner) -> None:
        if checkpoint_due(runner, by_epoch=True):
            self._gather(runner)

    def _gather(self, runner) -> None:
        # A collective: every rank reaches it, since CheckpointHook decides alike on all ranks.
        self._gathered = ((runner.epoch, runner.iter), all_gather_object(rank_state()))

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        # Rank 0 only. The states gathered at this iteration, if any; otherwise (a checkpoint
        # saved elsewhere, e.g. the best one after validation) this process's own.
        gathered, self._gathered = self._gathered, None
        if gathered is not None and gathered[0] == (runner.epoch, runner.iter):
            states = gathered[1]
        else:
            states = [rank_state()]
        checkpoint.setdefault('meta', {})['rng_state'] = dict(ranks=states)

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        self._pending = checkpoint.get('meta', {}).get('rng_state')

    def before_train(self, runner) -> None:
        if self._pending is None:
            return
        saved, self._pending = self._pending, None
        loop = runner.train_loop
        skipped = getattr(loop, 'iter', 0) if hasattr(loop, 'dataloader_iterator') else 0
        if skipped:  # IterBasedTrainLoop: restore once its skip of the trained batches is over
            loop.dataloader_iterator = _AfterSkipping(
                loop.dataloader_iterator, skipped, lambda: restore(runner, saved))
        else:
            restore(runner, saved)


def checkpoint_due(runner, by_epoch: bool) -> bool:
    """Whether a ``CheckpointHook`` of the run saves a checkpoint at this iteration
    (``by_epoch=False``) or epoch, by its own rule: every ``interval`` from ``save_begin``, and
    the last one with ``save_last``."""
    for hook in getattr(runner, 'hooks', ()):
        if not isinstance(hook, CheckpointHook) or hook.by_epoch != by_epoch:
            continue
        if by_epoch:
            due = hook.every_n_epochs(runner, hook.interval, hook.save_begin) or \
                (hook.save_last and hook.is_last_train_epoch(runner))
        else:
            due = hook.every_n_train_iters(runner, hook.interval, hook.save_begin) or \
                (hook.save_last and hook.is_last_train_iter(runner))
        if due:
            return True
    return False


def rank_state() -> dict:
    """This process's random states: python, numpy, torch's CPU generator, and the current
    CUDA device's generator when CUDA is in use."""
    numpy_state = np.random.get_state()
    state = dict(
        python=random.getstate(),
        # int64: torch < 2.3 has no uint32 tensors
        numpy=dict(name=numpy_state[0], key=torch.from_numpy(numpy_state[1].astype(np.int64)),
                   pos=int(numpy_state[2]), has_gauss=int(numpy_state[3]),
                   cached_gaussian=float(numpy_state[4])),
        torch=torch.get_rng_state())
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state['cuda'] = torch.cuda.get_rng_state()  # the current device's
    return state


def all_gather_object(obj: Any) -> List[Any]:
    """``[obj of rank 0, obj of rank 1, ...]``; ``[obj]`` outside a distributed run.

    ``obj`` (tensors and plain values) travels as ``torch.save`` bytes and is read back with
    ``weights_only``: torch's own object gathering cannot rebuild CPU tensors on every torch
    version (2.13 fails on their storages).
    """
    if not (torch_dist.is_available() and torch_dist.is_initialized()):
        return [obj]
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    gathered: List[Any] = [None] * torch_dist.get_world_size()
    torch_dist.all_gather_object(gathered, buffer.getvalue())
    return [torch.load(io.BytesIO(data), weights_only=True) for data in gathered]


def restore(runner, saved: dict) -> None:
    """Puts this rank's saved state back (see :class:`RNGStateHook` for other world sizes)."""
    rank, world_size = get_dist_info()
    states = saved['ranks'] if 'ranks' in saved else [saved]  # [saved]: rank 0's only
    notes = []
    if len(states) != world_size:
        notes.append(f'the checkpoint holds the states of {len(states)} processes, this run '
                     f'has {world_size}: the resumed run is not the interrupted one')
    if rank < len(states):
        state = states[rank]
        random.setstate(state['python'])
        numpy_state = state['numpy']
        np.random.set_state((numpy_state['name'], numpy_state['key'].numpy().astype(np.uint32),
                             numpy_state['pos'], numpy_state['has_gauss'],
                             numpy_state['cached_gaussian']))
        torch.set_rng_state(state['torch'])
        cuda_state = state.get('cuda')
        if cuda_state is not None:
            if isinstance(cuda_state, (list, tuple)):  # saved by get_rng_state_all()
                cuda_state = cuda_state[0]
            if torch.cuda.is_available():
                torch.cuda.set_rng_state(cuda_state)
            else:
                notes.append('the CUDA generator\'s state was saved, and is not put back '
                             'without CUDA')
    if rank == 0:
        runner.logger.info('RNGStateHook: restored the random states saved with the checkpoint'
                           + ''.join(f'; {note}' for note in notes))


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
