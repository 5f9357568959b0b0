"""Command-line pieces the tools share: the launcher options and how a tool fails.

A mistake the user can fix (a missing file, a bad checkpoint, a wrong option) ends a tool with
one ``error: ...`` line on stderr and exit status 1, printed by one process only, instead of a
traceback from every process of a distributed run.
"""
import argparse
import os
import sys
from typing import Callable

from mmengine.config import DictAction

from .config_options import LAUNCHERS, ConfigError
from .deploy.errors import DeployError
from .engine.slurm import launch_rank
from .models.backbones.pretrained import CheckpointError

# Exceptions that carry a message written for the user (emo-mm's checks raise these).
USER_ERRORS = (FileNotFoundError, CheckpointError, ConfigError, DeployError)
# Set to see the traceback of a user error too.
DEBUG_VARIABLE = 'EMO_MM_DEBUG'


def add_run_arguments(parser: argparse.ArgumentParser, run: str) -> None:
    """The options ``tools/train.py`` and ``tools/test.py`` (``run``: ``'train'`` or
    ``'test'``) share: ``--cfg-options``, ``--launcher`` (``tools/dist_<run>.sh`` passes
    ``pytorch``, ``tools/slurm_<run>.sh`` ``slurm``), ``--preflight`` and the launcher's
    ``--local-rank``."""
    scripts = f'dist_{run}.sh and slurm_{run}.sh'
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config entries, key=value (e.g. train_cfg.max_epochs=2)')
    parser.add_argument('--launcher', choices=LAUNCHERS, default='none',
                        help=f'job launcher (dist_{run}.sh passes pytorch, slurm_{run}.sh slurm)')
    parser.add_argument('--preflight', action='store_true',
                        help='only check the config, dataset paths and checkpoint, then exit '
                        f'({scripts} run this once before starting their processes)')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0,
                        help=argparse.SUPPRESS)  # set by torch.distributed.launch


def parse_local_rank(local_rank: int) -> None:
    """``torch.distributed.launch`` passes ``--local-rank`` instead of setting LOCAL_RANK."""
    os.environ.setdefault('LOCAL_RANK', str(local_rank))


def run_tool(main: Callable[[], None]) -> None:
    """Runs a tool's ``main``; a user error becomes one ``error:`` line (from rank 0 only:
    torchrun's ``RANK`` or Slurm's ``SLURM_PROCID``)."""
    try:
        main()
    except USER_ERRORS as error:
        if os.environ.get(DEBUG_VARIABLE):
            raise
        if launch_rank() == 0:
            print(f'error: {error}', file=sys.stderr)
        sys.exit(1)
