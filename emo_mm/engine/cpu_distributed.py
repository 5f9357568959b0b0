"""Runs mmengine's Runner without a GPU, in one or several processes.

* several processes talk over gloo; the process group is opened here, because mmengine's
  ``init_dist`` calls ``torch.cuda.set_device`` (which fails on a CPU build), and mmengine then
  uses it as is. The processes are started by ``torch.distributed.run`` (``--launcher
  pytorch``, which sets the group's variables) or by Slurm's ``srun`` (``--launcher slurm``:
  the variables are read from Slurm's, :mod:`emo_mm.engine.slurm`);
* DDP gets ``device_ids=None`` (mmengine passes the local rank, which DDP refuses for a CPU
  module);
* SyncBN, which needs GPUs, becomes BN, with a warning; in a run of several processes their
  BN running statistics are then averaged after every iteration
  (:class:`~emo_mm.engine.batchnorm_stats.AverageBatchNormStatsHook`), so that evaluation during
  training and every checkpoint use the same statistics in every process.

GPU runs are left to mmengine unchanged.
"""
import datetime
import inspect
import logging
import os
from typing import Any, List

import torch
import torch.distributed as torch_dist
from mmengine.config import Config, ConfigDict
from mmengine.logging import print_log
from torch.nn.parallel import DistributedDataParallel

from ..config_options import ConfigError
from .slurm import SlurmTask, launch_rank, read_slurm_task

SYNC_BN_TYPES = ('SyncBN', 'MMSyncBN')
TORCHRUN_VARIABLES = ('RANK', 'LOCAL_RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT')


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


def _no_buffer_sync() -> dict:
    """mmengine's default of not syncing buffers at each forward, under the name this torch's
    DDP takes (torch 2.13 renamed ``broadcast_buffers`` and warns about the old name)."""
    parameters = inspect.signature(DistributedDataParallel.__init__).parameters
    if 'forward_sync_buffers' in parameters:
        return dict(forward_sync_buffers=False)
    return dict(broadcast_buffers=False)


def adapt_to_cpu(cfg: Config) -> None:
    """Without a GPU: SyncBN -> BN (with a warning), gloo, and DDP without ``device_ids``."""
    if torch.cuda.is_available():
        return
    replaced = _replace_sync_bn(cfg.model)
    if cfg.pop('sync_bn', None) is not None:
        replaced.append('sync_bn')
    distributed = cfg.launcher != 'none'
    if replaced:
        if launch_rank() == 0:  # once, not once per process
            print_log(f'No GPU: SyncBN needs GPUs, so plain BN is used instead (in each process; '
                      f'batch statistics are not synchronised' +
                      ('; running statistics are averaged over the processes after every '
                       'iteration' if distributed else '') + f') at {", ".join(replaced)}',
                      logger='current', level=logging.WARNING)
        if distributed:
            hooks = list(cfg.get('custom_hooks') or [])
            if not any(hook.get('type') == 'AverageBatchNormStatsHook' for hook in hooks):
                cfg.custom_hooks = hooks + [ConfigDict(type='AverageBatchNormStatsHook')]
    if distributed:
        cfg.setdefault('env_cfg', ConfigDict()).setdefault('dist_cfg', ConfigDict())
        cfg.env_cfg.dist_cfg.backend = 'gloo'
        wrapper = cfg.get('model_wrapper_cfg') or ConfigDict(
            type='MMDistributedDataParallel', **_no_buffer_sync(),
            find_unused_parameters=cfg.get('find_unused_parameters', False))
        wrapper.device_ids = None
        cfg.model_wrapper_cfg = wrapper


def use_task_cpus(task: SlurmTask) -> None:
    """Computes with the cores Slurm gave the task (``--cpus-per-task``; one thread without
    it, torchrun's default), unless OMP_NUM_THREADS says otherwise.

    torchrun sets OMP_NUM_THREADS=1 before its processes start; srun does not, so each task
    would run one thread per core of the node (mmengine's own OMP_NUM_THREADS=1 comes after
    torch has read it), and tasks sharing a node's cores would slow each other down.
    """
    if os.environ.get('OMP_NUM_THREADS'):
        return
    threads = task.cpus or 1
    os.environ['OMP_NUM_THREADS'] = str(threads)  # for mmengine, and for child processes
    torch.set_num_threads(threads)


def init_cpu_distributed(cfg: Config) -> None:
    """Opens the gloo process group of a CPU run started by ``torch.distributed.run``
    (``--launcher pytorch``) or by Slurm's ``srun`` (``--launcher slurm``)."""
    if cfg.launcher == 'none' or torch.cuda.is_available() or torch_dist.is_initialized():
        return
    if cfg.launcher == 'slurm':
        task = read_slurm_task()
        # What mmengine's Slurm initialisation sets, before its torch.cuda.set_device.
        os.environ.update(task.torch_environment())
        use_task_cpus(task)
    elif cfg.launcher == 'pytorch':
        for var in TORCHRUN_VARIABLES:
            if var not in os.environ:
                raise ConfigError(f'--launcher pytorch expects torch.distributed.run\'s '
                                  f'environment ({var} is unset); start it with '
                                  f'tools/dist_train.sh')
    else:
        raise ConfigError(f'without a GPU, several processes run with --launcher pytorch '
                          f'(tools/dist_train.sh, tools/dist_test.sh) or --launcher slurm '
                          f'(tools/slurm_train.sh, tools/slurm_test.sh), not {cfg.launcher!r}')
    timeout = cfg.env_cfg.dist_cfg.get('timeout')
    kwargs = {} if timeout is None else dict(timeout=datetime.timedelta(seconds=timeout))
    torch_dist.init_process_group(backend='gloo', **kwargs)
