"""Nothing is lost when training stops: a run interrupted and resumed through MMSegmentation's
own packaged train script equals the uninterrupted run of our tools/train.py (the configs
declare the RNGStateHook that makes resume exact; no tool injects it). The same through our
tools in 2 processes, stopped by Slurm, is tests/test_slurm.py's
``test_a_cancelled_job_resumes_to_the_uninterrupted_weights``.

The interrupted run kills itself with SIGKILL right after its iteration-4 checkpoint is written
(tests/crash_hook.py): a hard stop at a known point, not a race with a poll.
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import CONFIGS, TOOLS, helpers_on_pythonpath

from emo_mm.datasets.tiny_ade import make_tiny_ade

pytestmark = pytest.mark.slow
CONFIG = CONFIGS / 'deeplabv3' / 'emo_1m_tiny.py'
# 12 iterations, a checkpoint every 4, no validation, drop path on, and the augmentations in
# the main process (no loader workers; the resume skips the trained batches through them):
# every random draw counts.
OPTIONS = ['train_cfg.max_iters=12', 'train_cfg.val_interval=1000',
           'train_dataloader.num_workers=0', 'train_dataloader.persistent_workers=False',
           'default_hooks.checkpoint.interval=4', 'default_hooks.logger.interval=1',
           'param_scheduler.0.end=12', 'model.backbone.drop_path_rate=0.2',
           'randomness.seed=0']
CRASH_AFTER = 4


def mmseg_train_script() -> Path:
    import mmseg
    return Path(mmseg.__file__).parent / '.mim' / 'tools' / 'train.py'


TRAIN_SCRIPTS = {"mmseg's packaged train.py": mmseg_train_script()}


@pytest.fixture(scope='module')
def run_dir(tmp_path_factory) -> Path:
    """The tiny ADE20K set, and the tiny config with the crash hook added."""
    path = tmp_path_factory.mktemp('resume')
    make_tiny_ade(path / 'data' / 'tiny_ade')
    (path / 'config.py').write_text(
        f'_base_ = {str(CONFIG)!r}\n'
        "custom_imports = dict(imports=['emo_mm', 'crash_hook'], allow_failed_imports=False)\n"
        "custom_hooks = [dict(type='RNGStateHook'), dict(type='CrashAfterCheckpointHook')]\n")
    return path


def train(script: Path, run_dir: Path, work_dir: Path, *extra: str,
          crash_after: int = 0) -> subprocess.CompletedProcess:
    env = helpers_on_pythonpath()
    if crash_after:
        env['EMO_MM_TEST_CRASH_AFTER_ITER'] = str(crash_after)
    return subprocess.run(
        [sys.executable, str(script), str(run_dir / 'config.py'), '--work-dir', str(work_dir),
         '--cfg-options', *OPTIONS, *extra], cwd=run_dir, capture_output=True, text=True,
        env={**os.environ, **env})


def final_weights(work_dir: Path) -> dict:
    import emo_mm  # noqa: F401  (mmengine checkpoints under torch's weights_only default)
    return torch.load(work_dir / 'iter_12.pth', map_location='cpu')['state_dict']


@pytest.fixture(scope='module')
def uninterrupted(run_dir) -> dict:
    """The final weights of the run that was never stopped (our tools/train.py)."""
    done = train(TOOLS / 'train.py', run_dir, run_dir / 'straight')
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    return final_weights(run_dir / 'straight')


@pytest.mark.parametrize('tool', TRAIN_SCRIPTS)
def test_interrupted_and_resumed_run_ends_with_the_same_weights(tool, run_dir, uninterrupted):
    script = TRAIN_SCRIPTS[tool]
    assert script.is_file(), script
    work = run_dir / tool.split()[0].strip("'s")

    crashed = train(script, run_dir, work, crash_after=CRASH_AFTER)
    assert crashed.returncode == -9, (crashed.stdout + crashed.stderr)[-3000:]  # SIGKILL
    assert (work / 'last_checkpoint').read_text().strip().endswith(f'iter_{CRASH_AFTER}.pth')
    assert not (work / f'iter_{2 * CRASH_AFTER}.pth').exists(), 'the run was not interrupted'

    resumed = train(script, run_dir, work, '--resume')
    log = resumed.stdout + resumed.stderr
    assert resumed.returncode == 0, log[-3000:]
    assert f'resumed epoch: 0, iter: {CRASH_AFTER}' in log
    assert 'RNGStateHook: restored the random states' in log

    actual = final_weights(work)
    assert uninterrupted.keys() == actual.keys()
    worst = max((uninterrupted[k].double() - actual[k].double()).abs().max().item()
                for k in uninterrupted if uninterrupted[k].is_floating_point())
    print(f'{tool}: max |uninterrupted - resumed| over all weights: {worst:.3e}')
    assert worst == 0.0
