"""Makes mmengine's own checkpoints loadable on torch >= 2.6, without turning safety off.

Since torch 2.6, ``torch.load`` defaults to ``weights_only=True``. mmengine 0.10.7 calls it
without that argument, and the checkpoints its Runner saves hold its logging state (numpy
arrays and scalars inside ``HistoryBuffer`` objects, whose statistics methods are pickled as
``getattr(HistoryBuffer, 'mean')``). So test, resume and ``init_detector`` all fail.

Instead of ``weights_only=False`` (which would let any checkpoint run code), exactly those
types are put on torch's allow-list. ``getattr`` is allowed only in a form that returns a
``HistoryBuffer`` statistics method; every other global in a checkpoint is still refused by
torch with an ``UnpicklingError`` naming it.
"""
import pickle
from typing import Any, Callable, List, Tuple, Union

import numpy as np
import torch
from mmengine.logging.history_buffer import HistoryBuffer

SafeGlobal = Union[Callable, Tuple[Callable, str]]


def history_buffer_statistic(owner: Any, name: str) -> Callable:
    """``getattr`` restricted to what mmengine pickles: ``HistoryBuffer``'s statistics."""
    HistoryBuffer()  # registers the default statistics (min, max, current, mean) on first use
    if owner is HistoryBuffer and name in HistoryBuffer._statistics_methods:
        return HistoryBuffer._statistics_methods[name]
    raise pickle.UnpicklingError(
        f'refusing getattr({owner!r}, {name!r}) in a checkpoint: only the HistoryBuffer '
        f'statistics {sorted(HistoryBuffer._statistics_methods)} may be looked up')


def _numpy_globals() -> List[SafeGlobal]:
    """numpy arrays, scalars and dtypes, under the module names numpy 1.x and 2.x pickle."""
    core = getattr(np, '_core', None) or np.core
    dtypes = {type(np.dtype(t)) for t in (np.float16, np.float32, np.float64, np.int8,
                                           np.int16, np.int32, np.int64, np.uint8, np.bool_)}
    found: List[SafeGlobal] = [np.ndarray, np.dtype, *dtypes]
    for module in ('numpy.core.multiarray', 'numpy._core.multiarray'):
        found += [(core.multiarray.scalar, f'{module}.scalar'),
                  (core.multiarray._reconstruct, f'{module}._reconstruct')]
    return found


def mmengine_checkpoint_globals() -> List[SafeGlobal]:
    """Every non-tensor global an mmengine Runner checkpoint contains."""
    return [HistoryBuffer, (history_buffer_statistic, 'builtins.getattr'), *_numpy_globals()]


def allow_mmengine_checkpoints() -> None:
    """Adds :func:`mmengine_checkpoint_globals` to ``torch.load``'s weights-only allow-list."""
    torch.serialization.add_safe_globals(mmengine_checkpoint_globals())


allow_mmengine_checkpoints()
