"""Where a task started by Slurm's ``srun`` sits in its job (``--launcher slurm``).

``srun`` starts every process of a run itself and tells each one its place through ``SLURM_*``
variables; this module turns them into the variables ``torch.distributed`` reads (``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``), as mmengine's own Slurm
initialisation does, so that a CPU run can open its gloo group without mmengine's
``torch.cuda.set_device`` (see :mod:`emo_mm.engine.cpu_distributed`).
"""
import os
import subprocess
from dataclasses import dataclass
from typing import Dict, Mapping, Optional

from ..config_options import ConfigError

# Ports derived from the job id: 20000-29999, below Linux's ephemeral range (32768-60999), so
# two jobs whose ids differ by less than PORT_SPAN never share a node's rendezvous port.
PORT_BASE = 20000
PORT_SPAN = 10000
REQUIRED_VARIABLES = ('SLURM_PROCID', 'SLURM_NTASKS', 'SLURM_NODELIST')


@dataclass(frozen=True)
class SlurmTask:
    """One task of a Slurm job step: its rank among all tasks, the task count, its rank on
    its node, the rendezvous address (the step's first node) and port, and the CPU cores
    Slurm gave it (``--cpus-per-task``; None when not asked for)."""

    rank: int
    world_size: int
    local_rank: int
    master_addr: str
    master_port: int
    cpus: Optional[int] = None

    def torch_environment(self) -> Dict[str, str]:
        """The variables ``torch.distributed.init_process_group('env://')`` reads."""
        return dict(RANK=str(self.rank), WORLD_SIZE=str(self.world_size),
                    LOCAL_RANK=str(self.local_rank), MASTER_ADDR=self.master_addr,
                    MASTER_PORT=str(self.master_port))


def port_of_job(job_id: str) -> int:
    """The rendezvous port of job ``job_id``: ``PORT_BASE + job_id % PORT_SPAN``."""
    if not job_id.isdigit():
        raise ConfigError(f'SLURM_JOB_ID must be a whole number, got {job_id!r}; '
                          'set MASTER_PORT to choose the rendezvous port')
    return PORT_BASE + int(job_id) % PORT_SPAN


def first_host(nodelist: str) -> str:
    """The first host of a Slurm node list (``node[01-04]`` -> ``node01``), expanded by
    ``scontrol show hostnames`` as Slurm itself does."""
    try:
        done = subprocess.run(['scontrol', 'show', 'hostnames', nodelist], capture_output=True,
                              text=True, timeout=60)
    except FileNotFoundError:
        raise ConfigError('scontrol (Slurm) not found: --launcher slurm reads the first node '
                          'of the job from it; set MASTER_ADDR, or run under srun') from None
    hosts = done.stdout.split()
    if done.returncode != 0 or not hosts:
        said = done.stderr.strip().splitlines()
        raise ConfigError(f'scontrol show hostnames {nodelist!r} failed: '
                          f'{said[-1] if said else "no host"}; set MASTER_ADDR')
    return hosts[0]


def _whole_number(environ: Mapping[str, str], name: str) -> int:
    value = environ[name]
    if not value.isdigit():
        raise ConfigError(f'{name} must be a whole number, got {value!r}')
    return int(value)


def read_slurm_task(environ: Optional[Mapping[str, str]] = None) -> SlurmTask:
    """The :class:`SlurmTask` of this process, from ``environ`` (default ``os.environ``).

    Rank, task count and local rank come from ``SLURM_PROCID``, ``SLURM_NTASKS`` and
    ``SLURM_LOCALID``; the address from ``MASTER_ADDR`` if set, else the first host of the
    step's node list (``SLURM_STEP_NODELIST``: inside an allocation a step may run on a subset
    of its nodes; else ``SLURM_NODELIST``); the port from ``MASTER_PORT`` if set, else
    :func:`port_of_job` of ``SLURM_JOB_ID``; the cores from ``SLURM_CPUS_PER_TASK``.
    """
    environ = os.environ if environ is None else environ
    missing = [name for name in REQUIRED_VARIABLES if name not in environ]
    if missing:
        raise ConfigError(f'--launcher slurm expects the environment of a task started by srun '
                          f'({", ".join(missing)} unset); start it with tools/slurm_train.sh '
                          f'or tools/slurm_test.sh')
    rank = _whole_number(environ, 'SLURM_PROCID')
    world_size = _whole_number(environ, 'SLURM_NTASKS')
    local_rank = _whole_number(environ, 'SLURM_LOCALID') if 'SLURM_LOCALID' in environ else 0
    master_addr = environ.get('MASTER_ADDR') or first_host(
        environ.get('SLURM_STEP_NODELIST') or environ['SLURM_NODELIST'])
    if environ.get('MASTER_PORT'):
        master_port = _whole_number(environ, 'MASTER_PORT')
    else:
        master_port = port_of_job(environ.get('SLURM_JOB_ID', ''))
    cpus = _whole_number(environ, 'SLURM_CPUS_PER_TASK') if environ.get(
        'SLURM_CPUS_PER_TASK') else None
    return SlurmTask(rank, world_size, local_rank, master_addr, master_port, cpus)


def launch_rank(environ: Optional[Mapping[str, str]] = None) -> int:
    """This process's rank before any process group exists: torchrun's ``RANK``, else
    Slurm's ``SLURM_PROCID``, else 0."""
    environ = os.environ if environ is None else environ
    value = environ.get('RANK') or environ.get('SLURM_PROCID') or '0'
    return int(value) if value.isdigit() else 0
