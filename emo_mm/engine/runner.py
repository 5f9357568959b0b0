"""Builds the Runner of ``tools/train.py`` / ``tools/test.py``: checks first, then mmengine.

Everything a user can get wrong that can be seen without running is checked before the Runner
prints its environment (:func:`preflight`); the Runner's console then shows progress and
results, while the environment and the full config go to the work dir's log file only.
"""
import logging
from typing import Optional

import torch
import torch.distributed as torch_dist
from mmengine.config import Config
from mmengine.logging import MMLogger, print_log
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from ..config_options import framework_of
from ..datasets.preflight import check_data_paths, is_local
from .cpu_distributed import adapt_to_cpu, init_cpu_distributed
from .devices import check_one_gpu_per_process, describe_device

# Kept in the log file, left out of the console: the environment and config dumps the Runner
# logs at start-up, and deprecation notices mmengine logs about its own internals (its
# CheckpointHook uses FileClient) that no config or user can act on.
LOG_FILE_ONLY = ('\n' + '-' * 60 + '\nSystem environment:', 'Config:\n',
                 '"FileClient" will be deprecated', '"HardDiskBackend" is the alias')


class _LogFileOnly(logging.Filter):
    """Drops :data:`LOG_FILE_ONLY` messages from a console handler."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(LOG_FILE_ONLY)


@RUNNERS.register_module()
class QuietConsoleRunner(Runner):
    """mmengine's Runner whose console leaves out the environment and config dumps.

    Both still go to ``<work_dir>/<timestamp>/<timestamp>.log``; the console says where.
    """

    def build_logger(self, *args, **kwargs) -> MMLogger:
        logger = super().build_logger(*args, **kwargs)
        for handler in logger.handlers:
            if type(handler) is logging.StreamHandler:  # the console, not the log file
                handler.addFilter(_LogFileOnly())
        log_files = [h.baseFilename for h in logger.handlers
                     if isinstance(h, logging.FileHandler)]
        if log_files:
            logger.info(f'environment, config and full log: {log_files[0]}')
        if self.distributed:
            # The environment dump says this too, under "GPU number" even on CPU.
            if torch.cuda.is_available():
                where = f'one GPU each, this one cuda:{torch.cuda.current_device()}'
            else:
                where = f'{torch.get_num_threads()} CPU threads each'
            logger.info(f'Distributed launcher: {self.launcher}, {self.world_size} processes '
                        f'(backend {torch_dist.get_backend()}, {where})')
        else:
            logger.info(f'Running {describe_device(distributed=False)}')
        return logger


def warn_untrained_batchnorm(cfg: Config) -> None:
    """A backbone trained from scratch with ``norm_eval=True`` keeps its BatchNorm at the
    initial statistics for the whole run, and barely learns: say so before training."""
    backbone = cfg.model.get('backbone') or {}
    if backbone.get('norm_eval') and backbone.get('init_cfg') is None and not cfg.get('load_from'):
        print_log(
            'model.backbone has norm_eval=True but no pretrained weights (init_cfg=None): its '
            'BatchNorm layers keep their initial statistics for the whole run, and the model '
            'barely learns (measured on SSDLite: 0.002 mAP instead of 0.5). Set '
            'model.backbone.norm_eval=False to train from scratch, or load a checkpoint.',
            logger='current', level=logging.WARNING)


def check_checkpoint_fits(cfg: Config, checkpoint: str) -> None:
    """A local ``checkpoint`` must be a readable checkpoint whose weights fit ``cfg.model``.

    mmengine loads test checkpoints non-strictly: a checkpoint of another model would be
    reported in a warning and then evaluated with random weights.
    """
    from mmengine.registry import init_default_scope

    from ..checkpoint_fit import fitting_state_dict
    from ..registries import registry
    if not is_local(checkpoint):
        return  # URLs are left to mmengine
    framework = framework_of(cfg)
    init_default_scope(framework)
    model = registry(framework).build(cfg.model.copy())
    fitting_state_dict(model, checkpoint, cfg.filename)


def preflight(cfg: Config, run: str, checkpoint: Optional[str] = None) -> None:
    """What can fail before the Runner starts: more processes than GPUs on a machine, the
    dataset paths of ``run``, the checkpoint (``run='test'``), and a from-scratch config that
    cannot learn its BatchNorm."""
    check_one_gpu_per_process()
    check_data_paths(cfg, run)
    if checkpoint is not None:
        check_checkpoint_fits(cfg, checkpoint)
    if run == 'train':
        warn_untrained_batchnorm(cfg)


def build_runner(cfg: Config, run: str) -> Runner:
    """Adapts ``cfg`` to the device and builds its runner (``cfg.runner_type`` if set, else
    :class:`QuietConsoleRunner`); call :func:`preflight` first."""
    adapt_to_cpu(cfg)
    init_cpu_distributed(cfg)
    cfg.setdefault('runner_type', 'QuietConsoleRunner')
    return RUNNERS.build(cfg)
