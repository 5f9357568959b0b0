"""Nothing is lost when training stops: an interrupted, resumed run equals an uninterrupted one."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
CONFIG = 'configs/deeplabv3/emo_1m_tiny.py'
# 12 iterations, a checkpoint every 4, no validation, drop path on: every random draw counts.
OPTIONS = ['train_cfg.max_iters=12', 'train_cfg.val_interval=1000',
           'default_hooks.checkpoint.interval=4', 'default_hooks.logger.interval=1',
           'param_scheduler.0.end=12', 'model.backbone.drop_path_rate=0.2',
           'randomness.seed=0']


def train_command(work_dir: Path, *extra: str) -> list:
    return [sys.executable, 'tools/train.py', CONFIG, '--work-dir', str(work_dir),
            '--cfg-options', *OPTIONS, *extra]


@pytest.fixture(scope='module')
def tiny_ade_for_resume() -> None:
    subprocess.run([sys.executable, 'tools/make_tiny_datasets.py', '--only', 'seg'], cwd=REPO,
                   check=True, capture_output=True)


def final_weights(work_dir: Path) -> dict:
    import emo_mm  # noqa: F401  (mmengine checkpoints under torch's weights_only default)
    return torch.load(work_dir / 'iter_12.pth', map_location='cpu')['state_dict']


def test_interrupted_and_resumed_run_ends_with_the_same_weights(tiny_ade_for_resume, tmp_path):
    straight, interrupted = tmp_path / 'straight', tmp_path / 'interrupted'
    subprocess.run(train_command(straight), cwd=REPO, check=True, capture_output=True)

    # Start the same run and kill it once its first checkpoint is on disk.
    process = subprocess.Popen(train_command(interrupted), cwd=REPO, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    pointer = interrupted / 'last_checkpoint'
    deadline = time.monotonic() + 600
    while not (pointer.exists() and pointer.read_text().strip().endswith('iter_4.pth')):
        assert process.poll() is None, 'training ended before its first checkpoint'
        assert time.monotonic() < deadline, 'no checkpoint within 10 minutes'
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert not (interrupted / 'iter_12.pth').exists(), 'the run was not interrupted'

    resumed = subprocess.run(train_command(interrupted, '--resume'), cwd=REPO,
                             capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    log = resumed.stdout + resumed.stderr
    assert 'resumed epoch: 0, iter: 4' in log or 'resumed epoch: 0, iter: 8' in log
    assert 'RNGStateHook: restored the random states' in log

    expected, actual = final_weights(straight), final_weights(interrupted)
    assert expected.keys() == actual.keys()
    worst = max((expected[k].double() - actual[k].double()).abs().max().item()
                for k in expected if expected[k].is_floating_point())
    print(f'max |uninterrupted - resumed| over all weights: {worst:.3e}')
    assert worst == 0.0
