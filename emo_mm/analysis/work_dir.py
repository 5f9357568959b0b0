"""Reading what an mmengine run left in its work dir: scalars, checkpoints, test metrics."""
import json
from pathlib import Path
from typing import Dict, List


def read_scalars(work_dir: Path) -> List[Dict[str, float]]:
    """Every record mmengine's LocalVisBackend logged (losses per logging step, metrics), of the
    latest run in ``work_dir``."""
    files = sorted(Path(work_dir).glob('*/vis_data/scalars.json'))
    if not files:
        raise FileNotFoundError(f'no */vis_data/scalars.json in {work_dir}')
    return [json.loads(line) for line in files[-1].read_text().splitlines() if line.strip()]


def latest_checkpoint(work_dir: Path) -> Path:
    """The checkpoint mmengine's ``last_checkpoint`` file names."""
    pointer = Path(work_dir) / 'last_checkpoint'
    if not pointer.is_file():
        raise FileNotFoundError(f'no checkpoint was saved in {work_dir}')
    return Path(pointer.read_text().strip())


def read_test_metrics(work_dir: Path) -> Dict[str, float]:
    """The metrics a ``tools/test.py`` run saved as ``<timestamp>/<timestamp>.json``."""
    runs = sorted(p for p in Path(work_dir).glob('*/*.json') if p.stem == p.parent.name)
    if not runs:
        raise FileNotFoundError(f'no metrics file in {work_dir}')
    return json.loads(runs[-1].read_text())
