"""Loading the authors' ImageNet checkpoints into the backbones: local files or URLs.

Every backbone's ``init_cfg=dict(type='Pretrained', checkpoint=PATH_OR_URL)`` ends here.

* URLs are downloaded into torch's hub cache under a name unique to the URL: the EMO authors'
  files are all called ``net.pth``, so torch's own cache (keyed by file name) would hand the
  second variant the first one's weights.
* Files are read with ``torch.load``'s ``weights_only`` safety on. An empty, truncated or
  non-checkpoint file is an error that names the file and what to do, never torch's advice to
  turn the safety off.
* The weights are picked from the authors' formats (a flat state_dict, mmengine's
  ``state_dict``, timm's ``state_dict`` / ``state_dict_ema``), the classifier keys are skipped and
  logged, and anything else that does not fit is an error naming the keys and the file read.
"""
import argparse
import hashlib
import os
import os.path as osp
import pickle
import urllib.error
from collections import OrderedDict
from typing import Any, Dict, List, Optional, Tuple
from urllib.parse import urlparse

import torch
from mmengine.logging import print_log
from torch import nn

CACHE_SUBDIR = 'emo_mm'
# timm's training script pickles its arguments (``args``) into every checkpoint it saves, as
# an argparse.Namespace: a plain attribute container, safe to rebuild.
CHECKPOINT_GLOBALS = [argparse.Namespace]
# Where the weights sit in a checkpoint dict, in order of preference.
STATE_KEYS = ('state_dict', 'model')


class CheckpointError(ValueError):
    """A checkpoint that cannot be read or does not fit; the message says what to do."""


def is_url(checkpoint: str) -> bool:
    return checkpoint.startswith(('http://', 'https://'))


def cache_file_name(url: str) -> str:
    """``.../EMO_5M/net.pth`` -> ``EMO_5M-net-<8 hex of the URL's sha256>.pth``: readable, and
    distinct for distinct URLs."""
    parts = [part for part in urlparse(url).path.split('/') if part]
    stem, ext = osp.splitext(parts[-1] if parts else 'checkpoint.pth')
    digest = hashlib.sha256(url.encode()).hexdigest()[:8]
    return '-'.join([*parts[-2:-1], stem, digest]) + (ext or '.pth')


def cache_dir() -> str:
    return osp.join(torch.hub.get_dir(), 'checkpoints', CACHE_SUBDIR)


def download(url: str) -> str:
    """The local copy of ``url`` in :func:`cache_dir`, downloaded on first use."""
    path = osp.join(cache_dir(), cache_file_name(url))
    if osp.isfile(path):
        return path
    os.makedirs(osp.dirname(path), exist_ok=True)
    print_log(f'downloading {url} to {path}', logger='current')
    try:
        # Written to a temporary file and renamed at the end: no half file is ever cached.
        torch.hub.download_url_to_file(url, path, progress=False)
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, 'reason', None) or error
        raise CheckpointError(
            f'could not download the checkpoint {url} ({reason}). Without internet access, '
            f'download it elsewhere and pass the local file, e.g. '
            f'--cfg-options model.backbone.init_cfg.checkpoint=/path/to/{osp.basename(url)} '
            f'(or init_cfg=dict(type=\'Pretrained\', checkpoint=...) in Python)') from None
    return path


def read_checkpoint(path: str) -> Any:
    """``torch.load(path)`` with weights_only safety, and errors that name the file and the fix."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'checkpoint file not found: {path} (absolute: '
                                f'{osp.abspath(path)})')
    if osp.getsize(path) == 0:
        raise CheckpointError(f'checkpoint {path} is empty (0 bytes): an interrupted download '
                              f'or copy? Delete it and fetch it again')
    try:
        with torch.serialization.safe_globals(CHECKPOINT_GLOBALS):
            return torch.load(path, map_location='cpu')
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
    except (RuntimeError, EOFError, ValueError) as error:
        # Truncated zip archives and non-pickle bytes end here.
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise CheckpointError(f'{path} is not a readable PyTorch checkpoint, or is truncated '
                              f'({first_line}); delete it and fetch it again') from None


def local_checkpoint(checkpoint: str) -> str:
    """A local path for ``checkpoint`` (URLs are downloaded into the cache)."""
    return download(checkpoint) if is_url(checkpoint) else checkpoint


def pick_state_dict(loaded: Any, source: str,
                    state_key: Optional[str] = None) -> 'OrderedDict[str, torch.Tensor]':
    """The weights inside a loaded checkpoint, without ``module.`` prefixes."""
    if not isinstance(loaded, dict):
        raise CheckpointError(f'{source} holds a {type(loaded).__name__}, not a checkpoint dict')
    if state_key is not None:
        if state_key not in loaded:
            raise CheckpointError(f'{source} has no {state_key!r}; its keys are '
                                  f'{_abbreviate(sorted(map(str, loaded)))}')
        state = loaded[state_key]
    else:
        state = next((loaded[key] for key in STATE_KEYS if key in loaded), loaded)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor)
                                              for v in state.values()):
        raise CheckpointError(f'{source} holds no state_dict of tensors (its keys: '
                              f'{_abbreviate(sorted(map(str, loaded)))})')
    return OrderedDict((k[7:] if k.startswith('module.') else k, v) for k, v in state.items())


def load_pretrained(model: nn.Module, checkpoint: str, prefix: Optional[str] = None,
                    state_key: Optional[str] = None,
                    skip_prefixes: Tuple[str, ...] = ('norm.', 'head.'),
                    unbuilt_prefixes: Tuple[str, ...] = ()) -> None:
    """Loads ``checkpoint`` (a path or an http(s) URL) into ``model`` strictly.

    Args:
        checkpoint: local file or URL (cached under :func:`cache_file_name`).
        prefix: take only the keys under this prefix, stripped (e.g. ``'backbone.'`` to take a
            backbone out of a detector's checkpoint).
        state_key: the dict entry holding the weights (e.g. ``'state_dict_ema'``); by default
            ``state_dict``, else ``model``, else the dict itself.
        skip_prefixes: keys of the ImageNet classifier, skipped and logged.
        unbuilt_prefixes: keys of the stages the model does not build (they come after its
            last output), skipped and logged.
    """
    name = type(model).__name__
    if not checkpoint:
        raise CheckpointError(
            f"{name}: init_cfg=dict(type='Pretrained') needs a checkpoint path or URL: set "
            f"model.backbone.init_cfg.checkpoint, or init_cfg=None to train from scratch")
    if not is_url(checkpoint) and not osp.isfile(checkpoint):
        raise FileNotFoundError(
            f'{name}: checkpoint file not found: {checkpoint} (absolute: '
            f'{osp.abspath(checkpoint)}). Download the ImageNet weights (the README\'s "The '
            f'backbones" says where) and give their path with --cfg-options '
            f'model.backbone.init_cfg.checkpoint=PATH, or set init_cfg=None to train from scratch')
    path = local_checkpoint(checkpoint)
    source = checkpoint if path == checkpoint else f'{checkpoint} (read from {path})'
    state = pick_state_dict(read_checkpoint(path), source, state_key)
    if prefix:
        prefix = prefix if prefix.endswith('.') else prefix + '.'
        state = OrderedDict((k[len(prefix):], v) for k, v in state.items()
                            if k.startswith(prefix))
    skipped = sorted(k for k in state if k.startswith(skip_prefixes))
    unbuilt = sorted(k for k in state if unbuilt_prefixes and k.startswith(unbuilt_prefixes))
    for key in skipped + unbuilt:
        del state[key]
    problems = mismatches(model.state_dict(), state)
    if problems:
        hint = (f' If {path} is a stale or wrong download, delete it and run again.'
                if path != checkpoint else '')
        raise CheckpointError(f'checkpoint {source} does not fit this {name} backbone (is it '
                              f'the checkpoint of another arch?): {problems}.{hint}')
    model.load_state_dict(state, strict=True)
    print_log(f'{name}: loaded {len(state)} tensors from {source}'
              + (f'; skipped the classifier keys {_abbreviate(skipped)}' if skipped else '')
              + (f'; skipped the keys of the stages not built (after the last of out_indices) '
                 f'{_abbreviate(unbuilt)}' if unbuilt else ''),
              logger='current')


def init_from_pretrained_cfg(model: nn.Module,
                             skip_prefixes: Tuple[str, ...] = ('norm.', 'head.'),
                             unbuilt_prefixes: Tuple[str, ...] = ()) -> bool:
    """Loads ``model.init_cfg = dict(type='Pretrained', checkpoint=..., [prefix=...,]
    [state_key=...])`` into ``model``; ``False`` (nothing done) for any other ``init_cfg``."""
    init_cfg = getattr(model, 'init_cfg', None)
    if not (isinstance(init_cfg, dict) and init_cfg.get('type') == 'Pretrained'):
        return False
    load_pretrained(model, init_cfg.get('checkpoint'), prefix=init_cfg.get('prefix'),
                    state_key=init_cfg.get('state_key'), skip_prefixes=skip_prefixes,
                    unbuilt_prefixes=unbuilt_prefixes)
    model._is_init = True  # mmengine's BaseModule: initialised, do not initialise again
    return True


def mismatches(own: Dict[str, torch.Tensor], state: Dict[str, torch.Tensor]) -> str:
    """What keeps ``state`` from loading strictly into a model with state_dict ``own``; ``''``
    when it fits."""
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    mismatched = [f'{k}: checkpoint {tuple(v.shape)} vs model {tuple(own[k].shape)}'
                  for k, v in state.items() if k in own and v.shape != own[k].shape]
    return '; '.join(f'{len(keys)} {what}: {_abbreviate(keys)}'
                     for what, keys in (('missing keys', missing),
                                        ('unexpected keys', unexpected),
                                        ('shape mismatches', mismatched)) if keys)


def _abbreviate(items: List[str], limit: int = 8) -> str:
    shown = ', '.join(items[:limit])
    return shown + (f', ... ({len(items) - limit} more)' if len(items) > limit else '')
