"""mmengine's checkpoints loaded safely on every supported torch (2.1 to 2.13).

mmengine 0.10.7 calls ``torch.load`` without ``weights_only``. On torch < 2.6 that means
unrestricted pickle: any checkpoint file given to ``--resume``, ``load_from``,
``init_detector`` or ``tools/test.py`` could run code. Since torch 2.6 it means weights-only,
which refuses mmengine's own checkpoints: they hold its logging state (numpy arrays and scalars
inside ``HistoryBuffer`` objects, whose statistics methods are pickled as
``getattr(HistoryBuffer, 'mean')``).

So, on import of ``emo_mm`` (which every emo-mm config imports through ``custom_imports``):

* mmengine's checkpoint loaders for local files and http(s) URLs are replaced, through its
  public ``CheckpointLoader.register_scheme``, by ones that read with weights-only safety on
  every torch (:func:`emo_mm.checkpoint_io.load_weights_only`) and cache URLs under distinct
  names, rank 0 first. mmengine's other schemes (``open-mmlab://``, ``s3://``, ``pavi://``
  ...) are left as they are: on torch < 2.6 they load with unrestricted pickle.
* Where torch has an allow-list (>= 2.4), exactly those types are put on it, so that a plain
  ``torch.load`` of an mmengine checkpoint works too on torch >= 2.6.

``getattr`` is allowed only in a form that returns a ``HistoryBuffer`` statistics method; every
other global in a checkpoint is refused with an ``UnpicklingError`` naming it.
"""
import os
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
    # numpy 2 moved numpy.core to numpy._core (numpy 1.26 has a numpy._core stub without it).
    core = np._core if int(np.__version__.split('.')[0]) >= 2 else np.core
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
    """Adds :func:`mmengine_checkpoint_globals` to ``torch.load``'s weights-only allow-list
    (torch >= 2.4; older torch has none, and its default is not weights-only anyway)."""
    if hasattr(torch.serialization, 'add_safe_globals'):
        torch.serialization.add_safe_globals(mmengine_checkpoint_globals())


def load_local_checkpoint(filename: str, map_location: Any = None) -> Any:
    """mmengine's loader for local files, with weights-only safety on every torch."""
    from .checkpoint_io import read_checkpoint
    return read_checkpoint(os.path.expanduser(filename), map_location=map_location)


def load_url_checkpoint(filename: str, map_location: Any = None, model_dir: Any = None,
                        progress: bool = False) -> Any:
    """mmengine's loader for http(s) URLs: cached under a name unique to the URL (rank 0
    downloads first), read with weights-only safety."""
    from .checkpoint_io import download, read_checkpoint
    return read_checkpoint(download(filename, model_dir), map_location=map_location)


def register_safe_checkpoint_loaders() -> None:
    """Puts :func:`load_local_checkpoint` and :func:`load_url_checkpoint` in mmengine's
    ``CheckpointLoader`` for ``''`` (local files) and ``http://`` / ``https://``."""
    from mmengine.runner.checkpoint import CheckpointLoader
    CheckpointLoader.register_scheme(prefixes='', loader=load_local_checkpoint, force=True)
    CheckpointLoader.register_scheme(prefixes=('http://', 'https://'),
                                     loader=load_url_checkpoint, force=True)


allow_mmengine_checkpoints()
register_safe_checkpoint_loaders()

