"""tools/slurm_train.sh and tools/slurm_test.sh against a real Slurm cluster: a one-node cluster
(tests/slurm_cluster.py) started for this module, two tasks per job on CPU (gloo).

Without Slurm (or without root) the cluster tests skip and say why; ``EMO_MM_REQUIRE_SLURM=1``
(set by .ci/run, which installs Slurm) makes that a failure. The tests of the launcher's
variables and of the scripts' own checks need no cluster.
"""
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Optional

import pytest
import torch
from conftest import CONFIGS, TOOLS, helpers_on_pythonpath, python_tool, run_tool
from mmengine.config import Config
from slurm_cluster import REQUIRE_VARIABLE, SlurmCluster, unavailable_reason

from emo_mm.config_options import ConfigError
from emo_mm.datasets.tiny_ade import make_tiny_ade
from emo_mm.engine import cpu_distributed
from emo_mm.engine.slurm import PORT_BASE, SlurmTask, launch_rank, port_of_job, read_slurm_task

TINY_DEEPLAB = CONFIGS / 'deeplabv3' / 'emo_1m_tiny.py'
TINY_DEEPLAB_EMOV2 = CONFIGS / 'deeplabv3' / 'emov2_1m_tiny.py'
MIOU = re.compile(r'aAcc: ([\d.]+)\s+mIoU: ([\d.]+)\s+mAcc: ([\d.]+)')
# Two tasks on one node, no GPUs: the form the tests ask for.
TWO_CPU_TASKS = dict(GPUS='2', GPUS_PER_NODE='2', CPUS_PER_TASK='1', GRES='')
ITERS, CHECKPOINT_EVERY, CANCEL_AFTER = 6, 2, 2

# DeepLabv3-EMO-1M at CPU-test size: 6 iterations of 2 tasks x 2 crops of 128 x 128, a checkpoint
# every 2, drop path on (every random draw counts for exact resume), one data worker per task
# (its random stream is seeded by rank, so a resumed run replays it: emo_mm.engine.RNGStateHook),
# and every rank's weights saved (tests/rank_weights_hook.py).
TRAIN_CONFIG = f"""_base_ = {str(TINY_DEEPLAB)!r}
custom_imports = dict(imports=['emo_mm', 'rank_weights_hook'], allow_failed_imports=False)
custom_hooks = [dict(type='PooledBatchNormCheckHook'), dict(type='RNGStateHook'),
                dict(type='SaveRankWeightsHook')]
crop_size = (128, 128)
model = dict(data_preprocessor=dict(size=crop_size), backbone=dict(drop_path_rate=0.2))
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='RandomResize', scale=(256, 192), ratio_range=(0.75, 1.5), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(batch_size=2, num_workers=1, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(num_workers=0, persistent_workers=False)
test_dataloader = val_dataloader
train_cfg = dict(max_iters={ITERS}, val_interval=1000)
param_scheduler = [dict(type='PolyLR', eta_min=0.0, power=0.9, begin=0, end={ITERS},
                        by_epoch=False)]
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval={CHECKPOINT_EVERY}))
randomness = dict(seed=0)
"""
# The same run, which cancels its own job once the checkpoint of iteration CANCEL_AFTER is on
# disk (tests/slurm_cancel_hook.py): Slurm's kill at a known point.
CANCEL_CONFIG = f"""_base_ = './train.py'
custom_imports = dict(imports=['emo_mm', 'rank_weights_hook', 'slurm_cancel_hook'],
                      allow_failed_imports=False)
custom_hooks = [dict(type='PooledBatchNormCheckHook'), dict(type='RNGStateHook'),
                dict(type='SaveRankWeightsHook'),
                dict(type='CancelJobAfterCheckpointHook', iteration={CANCEL_AFTER})]
"""


# --------------------------------------------------------------- the tasks' place in their job
def test_slurm_variables_become_torch_distributed_ones():
    environ = dict(SLURM_PROCID='3', SLURM_NTASKS='4', SLURM_LOCALID='1',
                   SLURM_NODELIST='node[1-2]', SLURM_JOB_ID='123456', MASTER_ADDR='node1',
                   SLURM_CPUS_PER_TASK='5')
    task = read_slurm_task(environ)
    assert task == SlurmTask(rank=3, world_size=4, local_rank=1, master_addr='node1',
                             master_port=PORT_BASE + 3456, cpus=5)
    assert task.torch_environment() == dict(RANK='3', WORLD_SIZE='4', LOCAL_RANK='1',
                                            MASTER_ADDR='node1', MASTER_PORT='23456')
    # Two jobs on one node rendezvous on different ports; MASTER_PORT decides when set.
    assert port_of_job('123457') != port_of_job('123456')
    assert read_slurm_task({**environ, 'MASTER_PORT': '29500'}).master_port == 29500
    assert launch_rank(environ) == 3 and launch_rank({**environ, 'RANK': '0'}) == 0
    assert launch_rank({}) == 0


def test_a_process_not_started_by_srun_is_told_how_to_start():
    with pytest.raises(ConfigError, match=r'SLURM_PROCID, SLURM_NTASKS, SLURM_NODELIST unset.*'
                                          r'tools/slurm_train.sh'):
        read_slurm_task({})
    with pytest.raises(ConfigError, match=r"SLURM_NTASKS must be a whole number, got 'x'"):
        read_slurm_task(dict(SLURM_PROCID='0', SLURM_NTASKS='x', SLURM_NODELIST='n1'))


def test_a_cpu_task_computes_with_the_cores_slurm_gave_it(monkeypatch):
    monkeypatch.delenv('OMP_NUM_THREADS', raising=False)
    threads = torch.get_num_threads()
    try:
        cpu_distributed.use_task_cpus(SlurmTask(0, 2, 0, 'n1', PORT_BASE, cpus=1))
        assert torch.get_num_threads() == 1 and os.environ['OMP_NUM_THREADS'] == '1'
        monkeypatch.setenv('OMP_NUM_THREADS', '2')  # the user's choice stays
        cpu_distributed.use_task_cpus(SlurmTask(0, 2, 0, 'n1', PORT_BASE, cpus=1))
        assert os.environ['OMP_NUM_THREADS'] == '2'
    finally:
        torch.set_num_threads(threads)


def test_with_a_gpu_the_slurm_launch_stays_mmengines(monkeypatch):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    for name in ('RANK', 'SLURM_PROCID', 'SLURM_NTASKS', 'SLURM_NODELIST'):
        monkeypatch.delenv(name, raising=False)
    cfg = Config(dict(launcher='slurm', model=dict(norm_cfg=dict(type='SyncBN'))))
    cpu_distributed.adapt_to_cpu(cfg)
    cpu_distributed.init_cpu_distributed(cfg)  # on CPU this would refuse the missing variables
    assert cfg.model.norm_cfg.type == 'SyncBN' and 'model_wrapper_cfg' not in cfg
    assert not torch.distributed.is_initialized() and 'RANK' not in os.environ


# ------------------------------------------------------------------ the scripts' own checks
@pytest.mark.parametrize('script', ('slurm_train.sh', 'slurm_test.sh'))
def test_slurm_scripts_print_usage(tmp_path, script):
    output = run_tool([TOOLS / script, 'partition', 'job'], cwd=tmp_path, expect_ok=False)
    expected = 'WORK_DIR' if script == 'slurm_train.sh' else 'CHECKPOINT'
    assert output.startswith('usage: ') and f'PARTITION JOB_NAME CONFIG {expected}' in output


@pytest.mark.parametrize('variable,value', [('GPUS', '0'), ('GPUS', 'two'), ('GPUS', '1.5'),
                                            ('GPUS_PER_NODE', '-1'), ('GPUS_PER_NODE', '0'),
                                            ('CPUS_PER_TASK', 'x')])
def test_slurm_scripts_refuse_a_bad_task_count(tmp_path, variable, value):
    for script in ('slurm_train.sh', 'slurm_test.sh'):
        output = run_tool([TOOLS / script, 'p', 'job', TINY_DEEPLAB, 'x'], cwd=tmp_path,
                          env={variable: value}, expect_ok=False)
        assert output.startswith(f'error: {variable} (') and f"got '{value}'" in output, output
        assert len(output.splitlines()) == 1


# --------------------------------------------------------------------------- on the cluster
# One cluster per module: make test's pytest-xdist workers take whole modules (loadscope).


@pytest.fixture(scope='module')
def cluster(tmp_path_factory):
    reason = unavailable_reason()
    if reason:
        if os.environ.get(REQUIRE_VARIABLE) == '1':
            pytest.fail(f'{REQUIRE_VARIABLE}=1 but {reason}')
        pytest.skip(reason)
    cluster = SlurmCluster(tmp_path_factory.mktemp('slurm'))
    cluster.start()  # stops what it started if it fails
    try:
        yield cluster
    finally:
        cluster.stop()
    assert cluster.processes() == [], 'processes of the test cluster outlived it'


@pytest.fixture(scope='module')
def workspace(tmp_path_factory) -> Path:
    """The jobs' working directory: the tiny dataset and the test configs."""
    path = tmp_path_factory.mktemp('slurm_jobs')
    make_tiny_ade(path / 'data' / 'tiny_ade', num_train=4, num_val=2)
    (path / 'train.py').write_text(TRAIN_CONFIG)
    (path / 'cancel.py').write_text(CANCEL_CONFIG)
    emov2_config = TRAIN_CONFIG.replace(str(TINY_DEEPLAB), str(TINY_DEEPLAB_EMOV2))
    assert emov2_config != TRAIN_CONFIG, 'TRAIN_CONFIG no longer names its base: the EMOv2 ' \
        'test would train EMO'
    (path / 'emov2.py').write_text(emov2_config)
    return path


def test_the_rendezvous_is_the_first_node_of_the_step(cluster, monkeypatch):
    monkeypatch.setenv('SLURM_CONF', str(cluster.conf))  # scontrol reads a config first
    environ = dict(SLURM_PROCID='0', SLURM_NTASKS='16', SLURM_NODELIST='gpu[07-08,11]',
                   SLURM_JOB_ID='5')
    assert read_slurm_task(environ).master_addr == 'gpu07'
    # Inside an allocation a step may run on some of its nodes only.
    assert read_slurm_task({**environ, 'SLURM_STEP_NODELIST': 'gpu[08,11]'}).master_addr == 'gpu08'


def slurm_script(cluster: SlurmCluster, cwd: Path, script: str, *args,
                 partition: Optional[str] = None, timeout: int = 300,
                 **settings: Optional[str]) -> subprocess.CompletedProcess:
    """``tools/<script> PARTITION JOB_NAME *args`` in ``cwd``: two CPU tasks in the cluster's
    partition, unless ``settings`` say otherwise (None: the script's default); the test hooks
    importable by the tasks."""
    env = {**cluster.env, **TWO_CPU_TASKS, **settings, **helpers_on_pythonpath(),
           'PYTHON': sys.executable, 'PYTHONWARNINGS': 'ignore'}
    env = {name: value for name, value in env.items() if value is not None}
    return cluster.run([TOOLS / script, partition or cluster.partition,
                        f'emo-{Path(script).stem}', *args], cwd=cwd, env=env, timeout=timeout)


def output_of(done: subprocess.CompletedProcess) -> str:
    return done.stdout + done.stderr


def assert_ok(done: subprocess.CompletedProcess) -> str:
    output = output_of(done)
    assert done.returncode == 0, output[-6000:]
    return output


def weights(path: Path) -> dict:
    import emo_mm  # noqa: F401  (mmengine checkpoints under torch's weights_only default)
    return torch.load(path, map_location='cpu')['state_dict']


def assert_same_weights(expected: dict, actual: dict) -> None:
    assert expected.keys() == actual.keys()
    worst = max((expected[k].double() - actual[k].double()).abs().max().item()
                for k in expected if expected[k].is_floating_point())
    print(f'max |expected - actual| over all weights: {worst:.3e}')
    assert worst == 0.0


@pytest.fixture(scope='module')
def straight_run(cluster, workspace) -> Path:
    """Training of ITERS iterations with two tasks through tools/slurm_train.sh."""
    work = workspace / 'work' / 'straight'
    output = assert_ok(slurm_script(cluster, workspace, 'slurm_train.sh', 'train.py', work))
    (work / 'console.txt').write_text(output)
    return work


@pytest.mark.slow
def test_two_tasks_train_as_one_ddp_run(straight_run):
    output = (straight_run / 'console.txt').read_text()
    assert 'Distributed launcher: slurm, 2 processes (backend gloo, 1 CPU threads each)' in output
    assert re.search(rf'Iter\(train\) \[{ITERS}/{ITERS}\]', output)
    # Each of the two tasks trained: DDP kept their replicas identical, and they moved.
    start, end = ([torch.load(straight_run / f'{when}_rank{rank}.pth') for rank in (0, 1)]
                  for when in ('start', 'end'))
    assert not (straight_run / 'end_rank2.pth').exists()
    for name, weight in end[0].items():
        assert torch.equal(weight, end[1][name]), name
    assert sum(not torch.equal(w, start[0][k]) for k, w in end[0].items()) > len(end[0]) // 2
    # The checkpoints hold rank 0's weights; the log file names the launcher too.
    final = weights(straight_run / f'iter_{ITERS}.pth')
    assert all(torch.equal(final[k], w) for k, w in end[0].items())
    log = next(straight_run.glob('*/*.log')).read_text()
    assert 'Distributed launcher: slurm' in log and 'GPU number: 2' in log


@pytest.mark.slow
def test_two_tasks_evaluate_as_one_process_does(cluster, workspace, straight_run):
    checkpoint = straight_run / f'iter_{ITERS}.pth'
    done = slurm_script(cluster, workspace, 'slurm_test.sh', 'train.py', checkpoint,
                        '--work-dir', workspace / 'work' / 'test_slurm')
    output = assert_ok(done)
    assert 'Distributed launcher: slurm, 2 processes (backend gloo, 1 CPU threads each)' in output
    on_slurm = MIOU.findall(output)
    single = MIOU.findall(run_tool(python_tool('test.py', 'train.py', checkpoint, '--work-dir',
                                               workspace / 'work' / 'test_single'),
                                   cwd=workspace, env=helpers_on_pythonpath()))
    print(f'aAcc, mIoU, mAcc: 2 Slurm tasks {on_slurm}, one process {single}')
    assert len(on_slurm) == 1 and on_slurm == single
    assert 0 < float(on_slurm[0][1]) <= 100


@pytest.mark.slow
def test_a_cancelled_job_resumes_to_the_uninterrupted_weights(cluster, workspace, straight_run):
    work = workspace / 'work' / 'cancelled'
    cancelled = slurm_script(cluster, workspace, 'slurm_train.sh', 'cancel.py', work)
    output = output_of(cancelled)
    print(output[-1500:])
    assert cancelled.returncode != 0, output[-3000:]
    assert f'scancel after iteration {CANCEL_AFTER}' in output and 'CANCELLED' in output, \
        output[-3000:]
    # The last checkpoint is whole: the uninterrupted run's weights at that iteration.
    assert (work / 'last_checkpoint').read_text().strip().endswith(f'iter_{CANCEL_AFTER}.pth')
    assert not (work / f'iter_{CANCEL_AFTER + CHECKPOINT_EVERY}.pth').exists()
    assert_same_weights(weights(straight_run / f'iter_{CANCEL_AFTER}.pth'),
                        weights(work / f'iter_{CANCEL_AFTER}.pth'))
    assert cluster.wait_for_no_jobs() == []  # the job is over, its tasks reaped

    resumed = assert_ok(slurm_script(cluster, workspace, 'slurm_train.sh', 'train.py', work,
                                     '--resume'))
    assert f'resumed epoch: 0, iter: {CANCEL_AFTER}' in resumed
    assert 'RNGStateHook: restored the random states' in resumed
    assert_same_weights(weights(straight_run / f'iter_{ITERS}.pth'),
                        weights(work / f'iter_{ITERS}.pth'))


@pytest.mark.slow
def test_emov2_trains_and_tests_through_the_slurm_scripts(cluster, workspace):
    """The EMOv2 segmentor through both scripts: TRAIN_CONFIG over its tiny config."""
    work = workspace / 'work' / 'emov2'
    output = assert_ok(slurm_script(cluster, workspace, 'slurm_train.sh', 'emov2.py', work))
    assert 'Distributed launcher: slurm, 2 processes' in output
    assert re.search(rf'Iter\(train\) \[{ITERS}/{ITERS}\]', output)
    start, end = ([torch.load(work / f'{when}_rank{rank}.pth') for rank in (0, 1)]
                  for when in ('start', 'end'))
    assert any(name.startswith('backbone.stage4') for name in end[0])
    for name, weight in end[0].items():
        assert torch.equal(weight, end[1][name]), name
    assert sum(not torch.equal(w, start[0][k]) for k, w in end[0].items()) > len(end[0]) // 2
    tested = assert_ok(slurm_script(cluster, workspace, 'slurm_test.sh', 'emov2.py',
                                    work / f'iter_{ITERS}.pth', '--work-dir', work / 'test'))
    assert len(MIOU.findall(tested)) == 1, tested[-3000:]


@pytest.mark.slow
def test_bad_input_is_said_once_before_training(cluster, workspace, tmp_path):
    # A missing config: our check, one line, no job.
    done = slurm_script(cluster, workspace, 'slurm_train.sh', 'nope.py', tmp_path / 'w')
    assert done.returncode != 0 and output_of(done) == 'error: config file not found: nope.py\n'
    # A missing dataset (an empty working directory): said once, by the check before srun.
    done = slurm_script(cluster, tmp_path, 'slurm_train.sh', workspace / 'train.py',
                        tmp_path / 'w')
    output = output_of(done)
    assert done.returncode != 0 and output.count('reads dataset paths that do not exist') == 1
    assert output.startswith('error: ') and output.count('error') == 1, output
    assert 'data/tiny_ade' in output and 'Traceback' not in output and 'srun' not in output
    # A partition the cluster does not have: one line naming the ones it has.
    done = slurm_script(cluster, workspace, 'slurm_train.sh', 'train.py', tmp_path / 'w',
                        partition='no_such_partition')
    assert done.returncode != 0 and output_of(done) == (
        f"error: the Slurm partition 'no_such_partition' does not exist; this cluster has: "
        f"{cluster.partition}\n")
    # The default GRES (gpu:2) on a partition without GPUs: srun's own message, in one line.
    done = slurm_script(cluster, workspace, 'slurm_train.sh', 'train.py', tmp_path / 'w',
                        GRES=None)
    assert done.returncode != 0
    assert output_of(done) == 'srun: error: Invalid generic resource (gres) specification\n'
    assert not (tmp_path / 'w').exists() and cluster.jobs() == []
