"""What ``tools/train.py`` and ``tools/test.py`` do, for mmdet and mmseg configs alike.

The framework is the config's ``default_scope``. Runs use mmengine's ``Runner`` and, when
launched by ``torch.distributed.run`` (``--launcher pytorch``), mmengine's DDP. Where no GPU is
available they still run, in one or several processes:

* several processes talk over gloo; the process group is opened here, because mmengine's
  ``init_dist`` calls ``torch.cuda.set_device`` (which fails on a CPU build), and mmengine then
  uses it as is;
* DDP gets ``device_ids=None`` (mmengine passes the local rank, which DDP refuses for a CPU
  module);
* SyncBN, which needs GPUs, becomes BN, with a warning.

Datasets are looked for before anything is built: a missing path fails at once, naming it.
"""
import argparse
import datetime
import logging
import os
import os.path as osp
from typing import Any, Dict, Iterator, List, Optional, Tuple

import torch
import torch.distributed as torch_dist
from mmengine.config import Config, ConfigDict, DictAction
from mmengine.logging import print_log
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

# default_scope -> what the framework is called in messages
FRAMEWORKS: Dict[str, str] = {'mmdet': 'MMDetection', 'mmseg': 'MMSegmentation'}
LAUNCHERS: Tuple[str, ...] = ('none', 'pytorch', 'slurm', 'mpi')
SYNC_BN_TYPES: Tuple[str, ...] = ('SyncBN', 'MMSyncBN')
# The dataloaders (and evaluators) each kind of run reads.
RUN_DATA: Dict[str, Tuple[Tuple[str, str], ...]] = {
    'train': (('train_dataloader', ''), ('val_dataloader', 'val_evaluator')),
    'test': (('test_dataloader', 'test_evaluator'),),
}


def add_run_arguments(parser: argparse.ArgumentParser, dist_script: str) -> None:
    """The options ``tools/train.py`` and ``tools/test.py`` share: ``--cfg-options``,
    ``--launcher`` (``dist_script`` passes ``pytorch``) and the launcher's ``--local-rank``."""
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config entries, key=value (e.g. train_cfg.max_epochs=2)')
    parser.add_argument('--launcher', choices=LAUNCHERS, default='none',
                        help=f'job launcher ({dist_script} passes pytorch)')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0,
                        help=argparse.SUPPRESS)  # set by torch.distributed.launch


def framework_of(cfg: Config) -> str:
    """The config's ``default_scope`` (``'mmdet'`` or ``'mmseg'``); a clear error otherwise."""
    scope = cfg.get('default_scope')
    if scope not in FRAMEWORKS:
        raise ValueError(f'{cfg.filename}: default_scope is {scope!r}; emo-mm tools serve '
                         f'{sorted(FRAMEWORKS)} configs')
    return scope


def load_config(path: str, cfg_options: Optional[dict] = None, launcher: str = 'none',
                work_dir: Optional[str] = None) -> Config:
    """Reads a config, applies ``--cfg-options``, the launcher and the work dir.

    The work dir is, by priority, ``work_dir``, the config's own, ``work_dirs/<config name>``.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'config file not found: {path}')
    if launcher not in LAUNCHERS:
        raise ValueError(f'launcher must be one of {LAUNCHERS}, got {launcher!r}')
    cfg = Config.fromfile(path)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    cfg.launcher = launcher
    framework_of(cfg)
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(path))[0])
    return cfg


def apply_train_options(cfg: Config, amp: bool = False, auto_scale_lr: bool = False,
                        resume: Optional[str] = None) -> None:
    """``--amp``, ``--auto-scale-lr`` and ``--resume [CKPT]`` (``'auto'``: the work dir's latest);
    adds :class:`emo_mm.engine.RNGStateHook` to the training hooks."""
    if amp:
        if not torch.cuda.is_available():
            raise RuntimeError('--amp needs a CUDA GPU (mmengine\'s AmpOptimWrapper); '
                               'none is available here')
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.loss_scale = 'dynamic'
    if auto_scale_lr:
        if 'base_batch_size' not in cfg.get('auto_scale_lr', {}):
            raise ValueError(f'--auto-scale-lr needs `auto_scale_lr = dict(base_batch_size=...)` '
                             f'in {cfg.filename}')
        cfg.auto_scale_lr.enable = True
    # Checkpoints carry the RNG states, so a resumed run continues the interrupted one exactly.
    hooks = cfg.setdefault('custom_hooks', [])
    if not any(hook.get('type') == 'RNGStateHook' for hook in hooks):
        hooks.append(ConfigDict(type='RNGStateHook'))
    if resume == 'auto':
        cfg.resume, cfg.load_from = True, None
    elif resume is not None:
        cfg.resume, cfg.load_from = True, resume


def enable_visualization(cfg: Config, show: bool = False, show_dir: Optional[str] = None,
                         wait_time: float = 2.) -> None:
    """``--show`` / ``--show-dir``: turns the framework's visualisation hook on while testing.

    ``show_dir`` is where the pictures go, as each framework's own ``tools/test.py`` takes it
    (mmdet: under ``work_dir/<timestamp>/``; mmseg: the visualiser's save dir).
    """
    hook = cfg.default_hooks.get('visualization')
    if hook is None:
        raise ValueError(f'{cfg.filename} has no default_hooks.visualization to draw with')
    hook.draw = True
    if show:
        hook.show, hook.wait_time = True, wait_time
    if show_dir:
        if framework_of(cfg) == 'mmdet':
            hook.test_out_dir = show_dir
        else:
            cfg.visualizer.save_dir = show_dir


def enable_tta(cfg: Config) -> None:
    """``--tta``: wraps the model in the config's ``tta_model`` and tests with ``tta_pipeline``."""
    missing = [key for key in ('tta_model', 'tta_pipeline') if key not in cfg]
    if missing:
        raise ValueError(f'--tta needs {missing} in {cfg.filename}')
    cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
    cfg.model = ConfigDict(**cfg.tta_model, module=cfg.model)


def add_result_dump(cfg: Config, out: str) -> None:
    """``--out``, as each framework's own ``tools/test.py`` takes it: mmdet dumps the
    predictions to the ``.pkl`` file ``out``; mmseg writes the label maps into the folder ``out``.
    """
    if framework_of(cfg) == 'mmseg':
        cfg.test_evaluator.output_dir = out
        cfg.test_evaluator.keep_results = True
        return
    if not out.endswith(('.pkl', '.pickle')):
        raise ValueError(f'--out for detection must be a .pkl or .pickle file, got {out!r}')
    evaluators = cfg.test_evaluator if isinstance(cfg.test_evaluator, list) else [
        cfg.test_evaluator]
    cfg.test_evaluator = [*evaluators, dict(type='DumpDetResults', out_file_path=out)]


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


def _local(path: str) -> bool:
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
        for i, evaluator in enumerate(evaluators if isinstance(evaluators, list) else [evaluators]):
            if evaluator.get('ann_file'):
                wanted.append((f'{evaluator_key}.ann_file', evaluator['ann_file']))
    return [(key, path) for key, path in wanted if _local(path) and not osp.exists(path)]


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


def _replace_sync_bn(cfg: Any, key: str = 'model') -> List[str]:
    """Turns every SyncBN norm config under ``cfg`` into BN, in place; returns their keys."""
    found: List[str] = []
    if isinstance(cfg, dict):
        if cfg.get('type') in SYNC_BN_TYPES:
            cfg['type'] = 'BN'
            found.append(key)
        for name, value in cfg.items():
            found += _replace_sync_bn(value, f'{key}.{name}')
    elif isinstance(cfg, (list, tuple)):
        for i, value in enumerate(cfg):
            found += _replace_sync_bn(value, f'{key}[{i}]')
    return found


def adapt_to_cpu(cfg: Config) -> None:
    """Without a GPU: SyncBN -> BN (with a warning), gloo, and DDP without ``device_ids``."""
    if torch.cuda.is_available():
        return
    replaced = _replace_sync_bn(cfg.model)
    if cfg.pop('sync_bn', None) is not None:
        replaced.append('sync_bn')
    if replaced:
        print_log(f'No GPU: SyncBN needs GPUs, so plain BN is used instead (in each process; '
                  f'batch statistics are not synchronised) at {", ".join(replaced)}',
                  logger='current', level=logging.WARNING)
    if cfg.launcher != 'none':
        cfg.setdefault('env_cfg', ConfigDict()).setdefault('dist_cfg', ConfigDict())
        cfg.env_cfg.dist_cfg.backend = 'gloo'
        wrapper = cfg.get('model_wrapper_cfg') or ConfigDict(
            type='MMDistributedDataParallel', broadcast_buffers=False,
            find_unused_parameters=cfg.get('find_unused_parameters', False))
        wrapper.device_ids = None
        cfg.model_wrapper_cfg = wrapper


def init_cpu_distributed(cfg: Config) -> None:
    """Opens the gloo process group of a CPU run launched by ``torch.distributed.run``.

    GPU runs are left to mmengine (``Runner`` opens the group itself).
    """
    if cfg.launcher == 'none' or torch.cuda.is_available() or torch_dist.is_initialized():
        return
    if cfg.launcher != 'pytorch':
        raise ValueError(f'without a GPU, several processes run with --launcher pytorch '
                         f'(tools/dist_train.sh, tools/dist_test.sh), not {cfg.launcher!r}')
    for var in ('RANK', 'LOCAL_RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT'):
        if var not in os.environ:
            raise RuntimeError(f'--launcher pytorch expects torch.distributed.run\'s environment '
                               f'({var} is unset); start it with tools/dist_train.sh')
    timeout = cfg.env_cfg.dist_cfg.get('timeout')
    kwargs = {} if timeout is None else dict(timeout=datetime.timedelta(seconds=timeout))
    torch_dist.init_process_group(backend='gloo', **kwargs)


def build_runner(cfg: Config, run: str) -> Runner:
    """Checks the data of ``run`` (``'train'``/``'test'``), adapts to the device, builds the
    runner (``cfg.runner_type`` if set, else mmengine's ``Runner``)."""
    check_data_paths(cfg, run)
    adapt_to_cpu(cfg)
    init_cpu_distributed(cfg)
    if 'runner_type' in cfg:
        return RUNNERS.build(cfg)
    return Runner.from_cfg(cfg)


def check_checkpoint(checkpoint: str) -> None:
    """A local checkpoint path must exist (URLs are left to mmengine)."""
    if _local(checkpoint) and not osp.isfile(checkpoint):
        raise FileNotFoundError(f'checkpoint not found: {checkpoint}')


def parse_local_rank(local_rank: int) -> None:
    """``torch.distributed.launch`` passes ``--local-rank`` instead of setting LOCAL_RANK."""
    os.environ.setdefault('LOCAL_RANK', str(local_rank))

