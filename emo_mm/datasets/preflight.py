"""Looks for a config's dataset files before anything is built: a missing path fails at once,
naming its config key, instead of after the Runner has printed its environment."""
import os.path as osp
from typing import Any, Dict, Iterator, List, Tuple

from mmengine.config import Config

# The dataloaders (and evaluators) each kind of run reads.
RUN_DATA: Dict[str, Tuple[Tuple[str, str], ...]] = {
    'train': (('train_dataloader', ''), ('val_dataloader', 'val_evaluator')),
    'test': (('test_dataloader', 'test_evaluator'),),
}


def _datasets(cfg: Any, key: str) -> Iterator[Tuple[str, Any]]:
    """Every leaf dataset config under ``cfg`` (through RepeatDataset, ConcatDataset, ...)."""
    if isinstance(cfg, dict):
        if 'dataset' in cfg:
            yield from _datasets(cfg['dataset'], f'{key}.dataset')
        elif 'datasets' in cfg:
            for i, dataset in enumerate(cfg['datasets']):
                yield from _datasets(dataset, f'{key}.datasets[{i}]')
        else:
            yield key, cfg


def is_local(path: str) -> bool:
    return '://' not in path  # URLs and remote backends are not checked


def missing_data_paths(cfg: Config, run: str) -> List[Tuple[str, str]]:
    """``(config key, path)`` of each dataset file or folder that a ``run`` (``'train'`` or
    ``'test'``) reads and that does not exist: ``data_root``, ``ann_file``, ``data_prefix``
    entries (joined to ``data_root`` as the datasets do) and the evaluators' ``ann_file``."""
    if run not in RUN_DATA:
        raise ValueError(f'run must be one of {sorted(RUN_DATA)}, got {run!r}')
    wanted: List[Tuple[str, str]] = []
    for loader_key, evaluator_key in RUN_DATA[run]:
        if not cfg.get(loader_key) or (loader_key == 'val_dataloader' and not cfg.get('val_cfg')):
            continue
        for key, dataset in _datasets(cfg[loader_key], loader_key):
            root = dataset.get('data_root') or ''
            if root:
                wanted.append((f'{key}.data_root', root))
            if dataset.get('ann_file'):
                wanted.append((f'{key}.ann_file', osp.join(root, dataset['ann_file'])))
            for name, prefix in (dataset.get('data_prefix') or {}).items():
                if prefix:
                    wanted.append((f'{key}.data_prefix.{name}', osp.join(root, prefix)))
        evaluators = (cfg.get(evaluator_key) or []) if evaluator_key else []
        for evaluator in evaluators if isinstance(evaluators, list) else [evaluators]:
            if evaluator.get('ann_file'):
                wanted.append((f'{evaluator_key}.ann_file', evaluator['ann_file']))
    return [(key, path) for key, path in wanted if is_local(path) and not osp.exists(path)]


def check_data_paths(cfg: Config, run: str) -> None:
    """Raises ``FileNotFoundError`` naming every missing dataset path of ``run``."""
    missing = missing_data_paths(cfg, run)
    if missing:
        lines = '\n'.join(f'  {key}: {path} (absolute: {osp.abspath(path)})'
                          for key, path in missing)
        raise FileNotFoundError(
            f'{cfg.filename} reads dataset paths that do not exist:\n{lines}\n'
            f'Point the config\'s `data_root` at the dataset, or for the tiny demo datasets run '
            f'`python tools/make_tiny_datasets.py` from the directory you train in.')
