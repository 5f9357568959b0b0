"""Reading checkpoint files without running their code, on every supported torch.

* :func:`load_weights_only` reads a file with torch's weights-only safety: tensors, containers
  and an allow-list of plain types (:func:`emo_mm.compat.mmengine_checkpoint_globals`, plus the
  caller's). Since torch 2.5 that is ``torch.load(weights_only=True)`` inside
  ``torch.serialization.safe_globals``. Older torch (2.1-2.4) has no allow-list for it, so the
  same rule is enforced by a restricted unpickler handed to ``torch.load``: it rebuilds only
  torch's own weights-only globals and the allow-list, and refuses every other global with
  ``pickle.UnpicklingError`` naming it. Never unrestricted pickle.
* :func:`read_checkpoint` is that, with errors that name the file and the fix.
* :func:`download` fetches a URL into torch's hub cache under a name unique to the URL (the EMO
  authors' files are all called ``net.pth``); in a distributed run rank 0 downloads first while
  the other ranks wait, then they read its copy.
"""
import _compat_pickle
import hashlib
import os
import os.path as osp
import pickle
import types
import urllib.error
from typing import Any, Callable, Dict, IO, Iterable, Optional, Tuple, Union
from urllib.parse import urlparse

import torch
import torch.distributed as torch_dist
from mmengine.logging import print_log

SafeGlobal = Union[Callable, Tuple[Callable, str]]
CACHE_SUBDIR = 'emo_mm'
# torch.serialization.safe_globals (a context manager) arrived in torch 2.5; weights_only=True
# with an allow-list before that would refuse mmengine's own checkpoints.
HAS_SAFE_GLOBALS = hasattr(torch.serialization, 'safe_globals')


class CheckpointError(ValueError):
    """A checkpoint that cannot be read or does not fit; the message says what to do."""


# --------------------------------------------------------------------- weights-only loading
def global_name(entry: SafeGlobal) -> Tuple[str, Callable]:
    """``(dotted name as pickled, object)`` of an allow-list entry (as torch's add_safe_globals
    takes them: an object, or ``(object, name)``)."""
    if isinstance(entry, tuple):
        return entry[1], entry[0]
    return f'{entry.__module__}.{entry.__qualname__}', entry


def restricted_pickle_module(allowed: Dict[str, Any]) -> types.ModuleType:
    """A stand-in for the ``pickle`` module whose unpickler rebuilds only ``allowed`` globals
    (dotted name -> object) and refuses every other one, naming it as torch does."""

    class RestrictedUnpickler(pickle.Unpickler):
        def find_class(self, module: str, name: str) -> Any:
            # Python 2 names, as protocol 2 writes them (e.g. __builtin__.getattr).
            module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
            module = _compat_pickle.IMPORT_MAPPING.get(module, module)
            full_name = f'{module}.{name}'
            if full_name in allowed:
                return allowed[full_name]
            raise pickle.UnpicklingError(
                f'Unsupported global: GLOBAL {full_name} was not an allowed global by default')

    module = types.ModuleType('emo_mm_restricted_pickle')
    module.Unpickler = RestrictedUnpickler
    module.load = lambda file, **kwargs: RestrictedUnpickler(file, **kwargs).load()
    module.__dict__.update(dumps=pickle.dumps, dump=pickle.dump, Pickler=pickle.Pickler,
                           UnpicklingError=pickle.UnpicklingError)
    return module


def _latin1_bytes(text: str, encoding: str = 'latin1') -> bytes:
    """``_codecs.encode`` as protocol-2 pickles use it for ``bytes`` (e.g. inside numpy
    arrays), and nothing else."""
    if not isinstance(text, str) or encoding not in ('latin1', 'latin-1'):
        raise pickle.UnpicklingError(f'refusing _codecs.encode({type(text).__name__}, '
                                     f'{encoding!r}): only latin1 text to bytes is rebuilt')
    return text.encode(encoding)


def _torch_weights_only_globals() -> Dict[str, Any]:
    """The globals torch's own weights-only unpickler rebuilds (tensors, storages, dtypes),
    and bytes as torch >= 2.5 rebuilds them."""
    from torch import _weights_only_unpickler
    return {**_weights_only_unpickler._get_allowed_globals(), '_codecs.encode': _latin1_bytes}


def load_weights_only(file: Union[str, IO[bytes]], map_location: Any = 'cpu',
                      extra_globals: Iterable[SafeGlobal] = ()) -> Any:
    """``torch.load`` that rebuilds tensors, containers, mmengine's logging state and
    ``extra_globals`` only, on every torch this project supports (see the module docstring)."""
    from .compat import mmengine_checkpoint_globals
    allow_list = [*mmengine_checkpoint_globals(), *extra_globals]
    if HAS_SAFE_GLOBALS:
        # Only what the global allow-list lacks: the context manager removes its entries on
        # exit, also ones that were there before (emo_mm.compat adds mmengine's for good).
        present = torch.serialization.get_safe_globals()
        with torch.serialization.safe_globals([g for g in allow_list if g not in present]):
            return torch.load(file, map_location=map_location, weights_only=True)
    return torch.load(file, map_location=map_location, weights_only=False,
                      pickle_module=restricted_pickle_module(allowed_globals(allow_list)))


def allowed_globals(allow_list: Iterable[SafeGlobal]) -> Dict[str, Any]:
    """What the restricted unpickler rebuilds: torch's weights-only globals and
    ``allow_list``, by dotted name."""
    return {**_torch_weights_only_globals(), **dict(map(global_name, allow_list))}


def read_checkpoint(path: str, extra_globals: Iterable[SafeGlobal] = (),
                    map_location: Any = 'cpu') -> Any:
    """:func:`load_weights_only` of a local file, with errors that name the file and the fix."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'checkpoint file not found: {path} (absolute: '
                                f'{osp.abspath(path)})')
    if osp.getsize(path) == 0:
        raise CheckpointError(f'checkpoint {path} is empty (0 bytes): an interrupted download '
                              f'or copy? Delete it and fetch it again')
    try:
        return load_weights_only(path, map_location, extra_globals)
    except pickle.UnpicklingError as error:
        # torch words every failure of its weights-only unpickler the same way, with advice to
        # turn the safety off; only the detail line says whether the file holds refused
        # objects or is no pickle at all.
        details = [line.strip() for line in str(error).splitlines() if line.strip()
                   and not line.startswith(('Weights only load failed', 'Please file',
                                            'Check the documentation'))]
        refused = [line for line in details if 'GLOBAL' in line]
        if not refused:
            detail = details[-1] if details else type(error).__name__
            raise CheckpointError(f'{path} is not a PyTorch checkpoint ({detail})') from None
        raise CheckpointError(
            f'{path} holds Python objects that torch.load refuses to rebuild with its '
            f'weights_only safety on ({refused[0]}). emo-mm does not turn the safety off: load '
            f'a file that holds only the weights (tensors in dicts), e.g. its state_dict '
            f're-saved by someone who can vouch for the file') from None
    except MemoryError:
        # The restricted unpickler (torch < 2.5) may read random bytes as a huge length.
        raise CheckpointError(f'{path} is not a PyTorch checkpoint (its bytes are no '
                              f'pickle)') from None
    except (RuntimeError, EOFError, ValueError) as error:
        # Truncated zip archives and non-pickle bytes end here.
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise CheckpointError(f'{path} is not a readable PyTorch checkpoint, or is truncated '
                              f'({first_line}); delete it and fetch it again') from None


# ------------------------------------------------------------------------------ downloads
def is_url(checkpoint: str) -> bool:
    return checkpoint.startswith(('http://', 'https://'))


def cache_file_name(url: str) -> str:
    """``.../EMO_5M/net.pth`` -> ``EMO_5M-net-<8 hex of the URL's sha256>.pth``: readable, and
    distinct for distinct URLs."""
    parts = [part for part in urlparse(url).path.split('/') if part]
    stem, ext = osp.splitext(parts[-1] if parts else 'checkpoint.pth')
    digest = hashlib.sha256(url.encode()).hexdigest()[:8]
    return '-'.join([*parts[-2:-1], stem, digest]) + (ext or '.pth')


def cache_dir(model_dir: Optional[str] = None) -> str:
    return model_dir or osp.join(torch.hub.get_dir(), 'checkpoints', CACHE_SUBDIR)


def _fetch(url: str, path: str) -> Optional[CheckpointError]:
    """Downloads ``url`` to ``path`` unless it is there; the error, if any, is returned."""
    if osp.isfile(path):
        return None
    os.makedirs(osp.dirname(path), exist_ok=True)
    print_log(f'downloading {url} to {path}', logger='current')
    try:
        # Written to a temporary file and renamed at the end: no half file is ever cached, and
        # ranks of several machines that download at once each rename a whole file.
        torch.hub.download_url_to_file(url, path, progress=False)
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, 'reason', None) or error
        return CheckpointError(
            f'could not download the checkpoint {url} ({reason}). Without internet access, '
            f'download it elsewhere and pass the local file, e.g. '
            f'--cfg-options model.backbone.init_cfg.checkpoint=/path/to/{osp.basename(url)} '
            f'(or init_cfg=dict(type=\'Pretrained\', checkpoint=...) in Python)')
    return None


def download(url: str, model_dir: Optional[str] = None) -> str:
    """The local copy of ``url`` in :func:`cache_dir`, downloaded on first use.

    In a distributed run, rank 0 downloads while the others wait at a barrier; each then reads
    the cached file (a rank on another machine without a shared file system downloads its own
    copy after the barrier). A failed download is raised on every rank, none is left waiting.
    """
    path = osp.join(cache_dir(model_dir), cache_file_name(url))
    distributed = torch_dist.is_available() and torch_dist.is_initialized()
    first = not distributed or torch_dist.get_rank() == 0
    error = _fetch(url, path) if first else None
    if distributed:
        torch_dist.barrier()
        if not first:
            error = _fetch(url, path)
    if error is not None:
        raise error from None  # the message says it all: no urllib pages
    return path
