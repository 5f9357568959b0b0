"""The main job's schedules learn: held-out metrics far above chance, losses fall, no NaN.

Each test runs exactly what ``tools/demo.py`` runs for its model (the tiny config, trained by
``tools/dist_train.sh`` with 2 processes on CPU, in a directory holding the tiny datasets) and
judges the held-out evaluations logged during training. The floors sit well under what the
schedule reached over several seeds (see README, "The main job"), so they hold for any seed yet
fail for a model that does not learn.
"""
import math
from pathlib import Path

import pytest
from conftest import free_port, load_tool

from emo_mm.analysis import read_scalars
from emo_mm.datasets.tiny_ade import make_tiny_ade
from emo_mm.datasets.tiny_coco import make_tiny_coco

demo = load_tool('demo')
# (task name, floor of the final held-out metric)
FLOORS = {'ssdlite_emo_1m': 0.6, 'deeplabv3_emo_1m': 70.0}


@pytest.fixture(scope='module')
def run_dir(tmp_path_factory) -> Path:
    """The full tiny datasets, where the demo writes them: ``<run dir>/data``."""
    path = tmp_path_factory.mktemp('demo')
    make_tiny_coco(path / 'data' / 'tiny_coco')
    make_tiny_ade(path / 'data' / 'tiny_ade')
    return path


@pytest.mark.parametrize('task', demo.TASKS, ids=lambda t: t.name)
def test_demo_schedule_learns(task, run_dir):
    outcome = demo.train(task, run_dir, nproc=2, port=free_port())
    records = read_scalars(outcome.work_dir)
    losses = [r['loss'] for r in records if 'loss' in r]
    metrics = [r[task.metric] for r in outcome.val_history]
    print(f'{task.name}: losses {losses[0]:.3f} -> {losses[-1]:.3f}; '
          f'held-out {task.metric} per evaluation: {metrics}')

    assert losses and all(math.isfinite(loss) for loss in losses), 'a loss was NaN or inf'
    assert losses[-1] < 0.5 * losses[0], 'the training loss did not fall'
    assert len(metrics) >= 3, 'the schedule evaluates several times'
    assert metrics[-1] >= FLOORS[task.name]
    assert metrics[-1] >= 3 * metrics[0], 'final metric not 3x the first evaluation'
    train_log = (outcome.work_dir / 'train.log').read_text()
    assert 'Grad strides do not match bucket view strides' not in train_log
