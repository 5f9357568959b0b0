"""The main job's schedules learn: held-out metrics far above chance, losses fall, no NaN.

Each test runs exactly what ``tools/demo.py`` runs for its model (the tiny config, trained by
``tools/dist_train.sh`` with 2 processes on CPU) and judges the held-out evaluations logged
during training. The floors sit well under what the schedule reached over several seeds (see
README, "The main job"), so they hold for any seed yet fail for a model that does not learn.
"""
import math
import subprocess
import sys

import pytest

from emo_mm import demo

# (task name, floor of the final held-out metric)
FLOORS = {'ssdlite_emo_1m': 0.6, 'deeplabv3_emo_1m': 70.0}


@pytest.fixture(scope='module')
def tiny_datasets() -> None:
    subprocess.run([sys.executable, 'tools/make_tiny_datasets.py'], cwd=demo.REPO, check=True,
                   capture_output=True)


@pytest.mark.parametrize('task', demo.TASKS, ids=lambda t: t.name)
def test_demo_schedule_learns(task, tiny_datasets, tmp_path):
    outcome = demo.train(task, tmp_path / task.name, nproc=2, port=29530)
    records = demo.read_scalars(outcome.work_dir)
    losses = [r['loss'] for r in records if 'loss' in r]
    metrics = [r[task.metric] for r in outcome.val_history]
    print(f'{task.name}: losses {losses[0]:.3f} -> {losses[-1]:.3f}; '
          f'held-out {task.metric} per evaluation: {metrics}')

    assert losses and all(math.isfinite(loss) for loss in losses), 'a loss was NaN or inf'
    assert losses[-1] < 0.5 * losses[0], 'the training loss did not fall'
    assert len(metrics) >= 3, 'the schedule evaluates several times'
    assert metrics[-1] >= FLOORS[task.name]
    assert metrics[-1] >= 3 * metrics[0], 'final metric not 3x the first evaluation'
