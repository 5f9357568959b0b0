"""Loading the authors' ImageNet checkpoints into the backbones: local files or URLs.

Every backbone's ``init_cfg=dict(type='Pretrained', checkpoint=PATH_OR_URL)`` ends here.

* URLs are downloaded into torch's hub cache under a name unique to the URL: the EMO authors'
  files are all called ``net.pth``, so torch's own cache (keyed by file name) would hand the
  second variant the first one's weights. In a distributed run rank 0 downloads first
  (:func:`emo_mm.checkpoint_io.download`).
* Files are read with weights-only safety on every supported torch
  (:mod:`emo_mm.checkpoint_io`). An empty, truncated or non-checkpoint file is an error that
  names the file and what to do, never torch's advice to turn the safety off.
* The weights are picked from the authors' formats (a flat state_dict, mmengine's
  ``state_dict``, timm's ``state_dict`` / ``state_dict_ema``, the EMOv2 trainer's ``net`` /
  ``net_E``), the classifier keys are skipped and
  logged, and anything else that does not fit is an error naming the keys and the file read.
"""
import argparse
import os.path as osp
from collections import OrderedDict
from typing import Any, Dict, List, Optional, Tuple

import torch
from mmengine.logging import print_log
from torch import nn

from ... import checkpoint_io
from ...checkpoint_io import CheckpointError, cache_dir, cache_file_name, download, is_url

__all__ = ['CheckpointError', 'cache_dir', 'cache_file_name', 'download', 'is_url',
           'read_checkpoint', 'local_checkpoint', 'pick_state_dict', 'load_pretrained',
           'init_from_pretrained_cfg', 'mismatches']
# timm's training script pickles its arguments (``args``) into every checkpoint it saves, as
# an argparse.Namespace: a plain attribute container, safe to rebuild.
CHECKPOINT_GLOBALS = [argparse.Namespace]
# Where the weights sit in a checkpoint dict, in order of preference: mmengine / timm, then the
# EMOv2 authors' trainer (``net``; ``net_E`` is its EMA copy, picked by name with state_key).
STATE_KEYS = ('state_dict', 'model', 'net', 'net_E')


def read_checkpoint(path: str) -> Any:
    """The checkpoint at ``path``, read with weights-only safety (timm's pickled training
    arguments allowed), with errors that name the file and the fix."""
    return checkpoint_io.read_checkpoint(path, CHECKPOINT_GLOBALS)


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
