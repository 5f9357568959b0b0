"""The main job's schedules learn: held-out metrics far above chance, losses fall, no NaN.

Each model is trained exactly as ``tools/demo.py`` trains it (the tiny config, trained by
``tools/dist_train.sh`` with 2 processes on CPU, in a directory holding the tiny datasets),
once per session (``learned_*`` in conftest.py); these tests judge the held-out evaluations
logged during training. The floors sit well under what the schedule reached over several seeds
(see README, "The main job"), so they hold for any seed yet fail for a model that does not learn.
"""
import math

from emo_mm.analysis import read_scalars


def check_learned(outcome, floor: float) -> None:
    records = read_scalars(outcome.work_dir)
    losses = [r['loss'] for r in records if 'loss' in r]
    metrics = [r[outcome.task.metric] for r in outcome.val_history]
    print(f'{outcome.task.name}: losses {losses[0]:.3f} -> {losses[-1]:.3f}; '
          f'held-out {outcome.task.metric} per evaluation: {metrics}')

    assert losses and all(math.isfinite(loss) for loss in losses), 'a loss was NaN or inf'
    assert losses[-1] < 0.5 * losses[0], 'the training loss did not fall'
    assert len(metrics) >= 3, 'the schedule evaluates several times'
    assert metrics[-1] >= floor
    assert metrics[-1] >= 3 * metrics[0], 'final metric not 3x the first evaluation'
    train_log = (outcome.work_dir / 'train.log').read_text()
    assert 'Grad strides do not match bucket view strides' not in train_log


def test_ssdlite_demo_schedule_learns(learned_ssdlite):
    assert learned_ssdlite.task.name == 'ssdlite_emo_1m'
    check_learned(learned_ssdlite, floor=0.6)


def test_deeplabv3_demo_schedule_learns(learned_deeplabv3):
    assert learned_deeplabv3.task.name == 'deeplabv3_emo_1m'
    check_learned(learned_deeplabv3, floor=70.0)
