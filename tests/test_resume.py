"""Nothing is lost when training stops: an interrupted, resumed run equals an uninterrupted one,
through our tools/train.py and through MMSegmentation's own packaged train script alike (the
configs declare the RNGStateHook that makes resume exact; no tool injects it)."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import CONFIGS, TOOLS

from emo_mm.datasets.tiny_ade import make_tiny_ade

CONFIG = CONFIGS / 'deeplabv3' / 'emo_1m_tiny.py'
# 12 iterations, a checkpoint every 4, no validation, drop path on: every random draw counts.
OPTIONS = ['train_cfg.max_iters=12', 'train_cfg.val_interval=1000',
           'default_hooks.checkpoint.interval=4', 'default_hooks.logger.interval=1',
           'param_scheduler.0.end=12', 'model.backbone.drop_path_rate=0.2',
           'randomness.seed=0']


def mmseg_train_script() -> Path:
    import mmseg
    return Path(mmseg.__file__).parent / '.mim' / 'tools' / 'train.py'


TRAIN_SCRIPTS = {'emo_mm tools/train.py': TOOLS / 'train.py',
                 "mmseg's packaged train.py": mmseg_train_script()}


def train_command(script: Path, work_dir: Path, *extra: str) -> list:
    return [sys.executable, str(script), str(CONFIG), '--work-dir', str(work_dir),
            '--cfg-options', *OPTIONS, *extra]


@pytest.fixture(scope='module')
def run_dir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp('resume')
    make_tiny_ade(path / 'data' / 'tiny_ade')
    return path


def final_weights(work_dir: Path) -> dict:
    import emo_mm  # noqa: F401  (mmengine checkpoints under torch's weights_only default)
    return torch.load(work_dir / 'iter_12.pth', map_location='cpu')['state_dict']


@pytest.mark.parametrize('tool', TRAIN_SCRIPTS)
def test_interrupted_and_resumed_run_ends_with_the_same_weights(tool, run_dir):
    script = TRAIN_SCRIPTS[tool]
    assert script.is_file(), script
    name = tool.split()[0].strip("'s")
    straight, interrupted = run_dir / f'{name}_straight', run_dir / f'{name}_interrupted'
    done = subprocess.run(train_command(script, straight), cwd=run_dir, capture_output=True,
                          text=True)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]

    # Start the same run and kill it once its first checkpoint is on disk.
    process = subprocess.Popen(train_command(script, interrupted), cwd=run_dir,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    pointer = interrupted / 'last_checkpoint'
    deadline = time.monotonic() + 600
    while not (pointer.exists() and pointer.read_text().strip().endswith('iter_4.pth')):
        assert process.poll() is None, 'training ended before its first checkpoint'
        assert time.monotonic() < deadline, 'no checkpoint within 10 minutes'
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert not (interrupted / 'iter_12.pth').exists(), 'the run was not interrupted'

    resumed = subprocess.run(train_command(script, interrupted, '--resume'), cwd=run_dir,
                             capture_output=True, text=True)
    log = resumed.stdout + resumed.stderr
    assert resumed.returncode == 0, log[-3000:]
    assert 'resumed epoch: 0, iter: 4' in log or 'resumed epoch: 0, iter: 8' in log
    assert 'RNGStateHook: restored the random states' in log

    expected, actual = final_weights(straight), final_weights(interrupted)
    assert expected.keys() == actual.keys()
    worst = max((expected[k].double() - actual[k].double()).abs().max().item()
                for k in expected if expected[k].is_floating_point())
    print(f'{tool}: max |uninterrupted - resumed| over all weights: {worst:.3e}')
    assert worst == 0.0
