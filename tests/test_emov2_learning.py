"""A tiny EMOv2 segmentor learns from scratch through the user's doors (tools/train.py, then
tools/test.py on its checkpoint).

EMOv2's layer scales start at 1e-6, so from scratch its features are ~1e-8 at first and the
model predicts the majority class until the scales have grown (~60 iterations here); the floors
sit well under what the schedule reached (held-out mIoU 18.9 -> 69.5 at iteration 80, one run,
seed 0, 1 thread), yet fail for a model that does not learn.
"""
import math
from pathlib import Path

import pytest
from conftest import CONFIGS, python_tool, run_tool

from emo_mm.analysis import read_scalars
from emo_mm.analysis.work_dir import latest_checkpoint, read_test_metrics

pytestmark = pytest.mark.slow
CONFIG = CONFIGS / 'deeplabv3' / 'emov2_1m_tiny.py'


@pytest.fixture(scope='module')
def trained(tmp_path_factory, demo_data) -> Path:
    """The tiny DeepLabv3-EMOv2-1M trained by tools/train.py (200 iterations, one process)."""
    work_dir = tmp_path_factory.mktemp('emov2_deeplabv3_tiny')
    run_tool(python_tool('train.py', CONFIG, '--work-dir', work_dir), cwd=demo_data,
             timeout=3600)
    return work_dir


def test_the_tiny_segmentor_learns(trained):
    records = read_scalars(trained)
    losses = [r['loss'] for r in records if 'loss' in r]
    mious = [r['mIoU'] for r in records if 'mIoU' in r]
    print(f'losses {losses[0]:.3f} -> {losses[-1]:.3f}; held-out mIoU {mious}')
    assert losses and all(math.isfinite(loss) for loss in losses)
    assert losses[-1] < 0.5 * losses[0]
    assert len(mious) >= 5
    assert mious[-1] >= 50.0 and mious[-1] >= 2 * mious[0]


def test_the_test_tool_reproduces_the_last_evaluation(trained, demo_data, tmp_path):
    checkpoint = latest_checkpoint(trained)
    run_tool(python_tool('test.py', CONFIG, checkpoint, '--work-dir', tmp_path), cwd=demo_data)
    last = [r['mIoU'] for r in read_scalars(trained) if 'mIoU' in r][-1]
    assert read_test_metrics(tmp_path)['mIoU'] == pytest.approx(last, abs=0.01)
