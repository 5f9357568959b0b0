"""A one-node Slurm cluster that the tests start, use and stop (tests/test_slurm.py).

It runs Debian's ``slurm-wlm`` and ``munge`` packages (``apt-get install slurm-wlm munge``, as
root; ``.ci/run`` installs them when missing) and needs nothing else from the machine: its own
``munged`` with a fresh key and socket (no system munged, no ``/etc/munge``), ``slurmctld`` and
``slurmd`` in the foreground, one ``slurm.conf``, all state and logs in one temporary directory,
ports found free at start. No cgroups (tests run in containers): processes are tracked through
``/proc`` (``proctrack/linuxproc``) and there is no task plugin. The daemons run as root, as
``slurmd`` must to start tasks as their user.

:meth:`SlurmCluster.stop` ends every process the cluster started: it cancels the jobs left, stops
the daemons, then kills any process that still carries the cluster's marker variable (every
daemon, job step and task inherits it), by process id.
"""
import os
import random
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from emo_mm.engine.slurm import PORT_BASE, PORT_SPAN

DAEMONS = ('munged', 'slurmctld', 'slurmd')
CLIENTS = ('srun', 'scontrol', 'scancel', 'sinfo', 'squeue')
# Set (to 1) by .ci/run: a machine without Slurm then fails these tests instead of skipping them.
REQUIRE_VARIABLE = 'EMO_MM_REQUIRE_SLURM'
# In the environment of everything the cluster starts; its value is the cluster's directory.
MARKER_VARIABLE = 'EMO_MM_TEST_SLURM_CLUSTER'
# Variables that must not reach the test jobs, which get what a user's srun gets: those of an
# outer launcher (pytest may itself run inside a Slurm job or under torchrun) and the thread
# counts the test session sets for itself (tests/conftest.py, under pytest-xdist).
FOREIGN_PREFIXES = ('SLURM_', 'SBATCH_', 'SRUN_', 'SALLOC_')
FOREIGN_VARIABLES = ('RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'MASTER_ADDR', 'MASTER_PORT',
                     'OMP_NUM_THREADS', 'MKL_NUM_THREADS')
# Jobs whose id-derived rendezvous ports (emo_mm.engine.slurm.port_of_job) are checked free.
JOB_IDS_CHECKED = 40


def unavailable_reason() -> Optional[str]:
    """Why no test cluster can start here, or None."""
    missing = [name for name in (*DAEMONS, *CLIENTS) if shutil.which(name) is None]
    if missing:
        return (f'Slurm is not installed ({", ".join(missing)} not found): run '
                f'`apt-get install slurm-wlm munge` as root (.ci/run does)')
    if os.geteuid() != 0:
        return 'the test Slurm cluster needs root (slurmd starts tasks as their user)'
    return None


def _port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(('', port))
        except OSError:
            return False
    return True


def _free_ports(count: int) -> List[int]:
    """``count`` distinct ports that are free now (chosen by the kernel)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(('', 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _first_job_id(avoid: Sequence[int]) -> int:
    """A first job id whose next :data:`JOB_IDS_CHECKED` jobs rendezvous on free ports."""
    for _ in range(200):
        first = random.randrange(1, PORT_SPAN - JOB_IDS_CHECKED)
        ports = range(PORT_BASE + first, PORT_BASE + first + JOB_IDS_CHECKED)
        if not set(ports) & set(avoid) and all(_port_is_free(port) for port in ports):
            return first
    raise RuntimeError(f'no {JOB_IDS_CHECKED} consecutive free ports above {PORT_BASE}')


class SlurmCluster:
    """One node (this machine, 127.0.0.1) in one partition, all files under ``root``.

    Run clients with :attr:`env` (``SLURM_CONF`` points at this cluster; an outer launcher's
    variables are removed), e.g. ``subprocess.run(['srun', ...], env=cluster.env)``.
    """

    def __init__(self, root: Path, partition: str = 'emo_mm_test_cpu') -> None:
        self.root = Path(root)
        self.partition = partition
        self.conf = self.root / 'slurm.conf'
        self.munge_socket = self.root / 'munge' / 'socket'
        # Unix socket paths are limited to 107 bytes.
        if len(str(self.munge_socket)) > 100:
            raise ValueError(f'{self.root} is too long a path for munged\'s socket')
        self._daemons: Dict[str, subprocess.Popen] = {}
        self.env = {name: value for name, value in os.environ.items()
                    if not name.startswith(FOREIGN_PREFIXES) and name not in FOREIGN_VARIABLES}
        # The cluster has no GPUs (GRES=): its tasks run on CPU (gloo) on a GPU host too.
        self.env.update({'SLURM_CONF': str(self.conf), MARKER_VARIABLE: str(self.root),
                         'CUDA_VISIBLE_DEVICES': ''})

    # ------------------------------------------------------------------------- start and stop
    def start(self, timeout: float = 60.) -> None:
        """Starts munged, slurmctld and slurmd and waits until the node takes jobs; stops
        whatever started if that fails."""
        try:
            self._start_munged(timeout)
            self.conf.write_text(self._config())
            # -D: in the foreground (a child of this process, stopped by stop()); -f: this
            # config; -c: no state from an earlier start.
            self._start_daemon('slurmctld', ['slurmctld', '-D', '-c', '-f', str(self.conf)])
            self._start_daemon('slurmd', ['slurmd', '-D', '-f', str(self.conf)])
            self._wait_until_idle(timeout)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Cancels the jobs left, stops the daemons, kills whatever they started."""
        if 'slurmctld' in self._daemons and self._daemons['slurmctld'].poll() is None:
            try:  # Slurm's own ending of the jobs first; what is left is killed below anyway
                jobs = self.jobs()
                if jobs:
                    self.run(['scancel', *jobs], timeout=15)
                    self.wait_for_no_jobs(30.)
            except subprocess.SubprocessError:
                pass
        for name in ('slurmd', 'slurmctld', 'munged'):
            process = self._daemons.pop(name, None)
            if process is not None and process.poll() is None:
                process.terminate()
                try:
                    process.wait(15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        for pid in self.processes():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def processes(self) -> List[int]:
        """Ids of the live processes this cluster started (they carry its marker)."""
        marker = f'{MARKER_VARIABLE}={self.root}'.encode()
        found = []
        for entry in Path('/proc').iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                environ = (entry / 'environ').read_bytes().split(b'\0')
            except OSError:  # gone, or not ours to read
                continue
            if marker in environ:
                found.append(int(entry.name))
        return found

    # -------------------------------------------------------------------------------- clients
    def run(self, args: Sequence[str], timeout: float = 60.,
            **kwargs) -> subprocess.CompletedProcess:
        """A client command against this cluster; returns its completed process."""
        kwargs.setdefault('env', self.env)
        kwargs.setdefault('stdin', subprocess.DEVNULL)  # srun would forward it to task 0
        return subprocess.run(list(map(str, args)), capture_output=True, text=True,
                              timeout=timeout, **kwargs)

    def jobs(self) -> List[str]:
        """Ids of the jobs the controller still lists (pending, running or completing)."""
        return self.run(['squeue', '-h', '-o', '%i'], timeout=15).stdout.split()

    def wait_for_no_jobs(self, timeout: float = 60.) -> List[str]:
        """Waits until no job is listed and returns the ids still listed at the deadline.

        A cancelled job stays listed, in state CG (completing), while slurmd reaps its tasks,
        which can outlast the srun that started it by a few seconds.
        """
        self._wait(lambda: not self.jobs(), timeout, 'the jobs to end', fail=False)
        return self.jobs()

    def logs(self, lines: int = 30) -> str:
        """The end of each daemon's log, for failure messages."""
        parts = []
        for path in sorted(self.root.glob('*.log')) + sorted(self.root.glob('*.err')):
            tail = path.read_text(errors='replace').splitlines()[-lines:]
            parts.append(f'--- {path.name}\n' + '\n'.join(tail))
        return '\n'.join(parts)

    # ---------------------------------------------------------------------------------- parts
    def _start_munged(self, timeout: float) -> None:
        folder = self.munge_socket.parent
        # munged wants its socket's folder searchable by all (clients of every user connect).
        folder.mkdir(parents=True)
        folder.chmod(0o755)
        key = folder / 'munge.key'
        key.touch(mode=0o600)
        key.write_bytes(os.urandom(1024))  # munged only reads keys no one else can
        # --force: munged refuses a socket below a folder that not everyone may enter, such as
        # pytest's temporary folders (0700); only root uses this one.
        self._start_daemon('munged', [
            'munged', '--foreground', '--force', f'--key-file={key}',
            f'--socket={self.munge_socket}', f'--pid-file={folder / "munged.pid"}',
            f'--log-file={self.root / "munged.log"}', f'--seed-file={folder / "munged.seed"}'])
        self._wait(lambda: self._running() and self.munge_socket.exists(), timeout,
                   'munged\'s socket')

    def _start_daemon(self, name: str, args: List[str]) -> None:
        with open(self.root / f'{name}.err', 'w') as stderr:
            self._daemons[name] = subprocess.Popen(args, env=self.env, stdin=subprocess.DEVNULL,
                                                   stdout=subprocess.DEVNULL, stderr=stderr)

    def _node(self) -> str:
        """This machine as ``slurmd -C`` describes it (CPUs, sockets, memory), reached at
        127.0.0.1."""
        described = self.run(['slurmd', '-C']).stdout.splitlines()
        node = next((line for line in described if line.startswith('NodeName=')), None)
        if node is None:
            raise RuntimeError(f'slurmd -C did not describe this node: {described}')
        return f'{node} NodeAddr=127.0.0.1 State=UNKNOWN'

    def _config(self) -> str:
        host = socket.gethostname().split('.')[0]
        controller_port, node_port = _free_ports(2)
        first_job = _first_job_id(avoid=(controller_port, node_port))
        for folder in ('state', 'spool'):
            (self.root / folder).mkdir(mode=0o700)
        root = self.root
        return '\n'.join([
            'ClusterName=emo-mm-test',
            f'SlurmctldHost={host}(127.0.0.1)',
            'SlurmUser=root',
            'SlurmdUser=root',
            f'SlurmctldPort={controller_port}',
            f'SlurmdPort={node_port}',
            'AuthType=auth/munge',
            'CredType=cred/munge',
            f'AuthInfo=socket={self.munge_socket}',
            f'StateSaveLocation={root / "state"}',
            f'SlurmdSpoolDir={root / "spool"}',
            f'SlurmctldPidFile={root / "slurmctld.pid"}',
            f'SlurmdPidFile={root / "slurmd.pid"}',
            f'SlurmctldLogFile={root / "slurmctld.log"}',
            f'SlurmdLogFile={root / "slurmd.log"}',
            # No cgroups: a container rarely lets them be used.
            'ProctrackType=proctrack/linuxproc',
            'TaskPlugin=task/none',
            'JobAcctGatherType=jobacct_gather/none',
            'AccountingStorageType=accounting_storage/none',
            'JobCompType=jobcomp/none',
            'MpiDefault=none',
            'SchedulerType=sched/builtin',
            'SelectType=select/cons_tres',
            'SelectTypeParameters=CR_CPU',
            'ReturnToService=2',
            'KillWait=5',  # seconds from a cancel's SIGTERM to its SIGKILL
            f'FirstJobId={first_job}',
            self._node(),
            f'PartitionName={self.partition} Nodes=ALL Default=YES MaxTime=INFINITE State=UP',
            ''])

    def _running(self) -> bool:
        """True; an error naming the daemon that exited, with the logs, if one did."""
        for name, process in self._daemons.items():
            if process.poll() is not None:
                raise RuntimeError(f'{name} exited ({process.returncode}):\n{self.logs()}')
        return True

    def _wait_until_idle(self, timeout: float) -> None:
        def idle() -> bool:
            self._running()
            states = self.run(['sinfo', '-h', '-N', '-o', '%T'], timeout=10).stdout.split()
            return states == ['idle']
        self._wait(idle, timeout, 'the node to be idle')

    def _wait(self, condition, timeout: float, what: str, fail: bool = True) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                if fail:
                    raise RuntimeError(f'timed out waiting for {what}:\n{self.logs()}')
                return
            time.sleep(0.2)
