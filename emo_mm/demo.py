"""The main job on the embedded default, step by step (``tools/demo.py`` runs them in order).

1. write the tiny datasets (``tools/make_tiny_datasets.py``);
2. train SSDLite-EMO-1M and DeepLabv3-EMO-1M on them with ``tools/dist_train.sh`` (2 processes;
   gloo on CPU);
3. evaluate the final checkpoints with ``tools/test.py`` (CocoMetric, IoUMetric);
4. run the mmdet and mmseg inference APIs on the photos in ``demo/`` and on held-out tiny images,
   saving pictures of the predictions;
5. plot the training curves; print a summary.

Every step is the user-facing tool or API itself, run as a user would run it.
"""
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence

REPO = Path(__file__).resolve().parents[1]
TOOLS = REPO / 'tools'
PHOTOS = REPO / 'demo'


@dataclass(frozen=True)
class Task:
    """One model of the main job: its config, the metric it is judged by, how it is shown."""
    name: str
    config: str
    metric: str  # key in the evaluation results, e.g. 'coco/bbox_mAP'
    framework: str  # 'mmdet' or 'mmseg'
    val_split: str  # folder (under the dataset root) of held-out images to draw predictions on


TASKS = (
    Task('ssdlite_emo_1m', 'configs/ssdlite/emo_1m_tiny.py', 'coco/bbox_mAP', 'mmdet',
         'data/tiny_coco/val2017'),
    Task('deeplabv3_emo_1m', 'configs/deeplabv3/emo_1m_tiny.py', 'mIoU', 'mmseg',
         'data/tiny_ade/images/validation'),
)


@dataclass
class Outcome:
    """What one task left behind."""
    task: Task
    work_dir: Path
    checkpoint: Optional[Path] = None
    train_seconds: float = 0.
    val_history: List[Dict[str, float]] = field(default_factory=list)
    test_metrics: Dict[str, float] = field(default_factory=dict)
    pictures: List[Path] = field(default_factory=list)


def run(command: Sequence[str], env: Optional[dict] = None) -> None:
    """Runs a tool with its output streaming to the console (progress, ETA); fails loudly."""
    print('\n$ ' + ' '.join(map(str, command)), flush=True)
    done = subprocess.run([str(c) for c in command], cwd=REPO,
                          env={**os.environ, **(env or {})})
    if done.returncode != 0:
        raise RuntimeError(f'{command[0]} {command[1]} failed with exit code {done.returncode}')


def make_datasets() -> None:
    run([sys.executable, TOOLS / 'make_tiny_datasets.py', '--root', REPO / 'data'])


def train(task: Task, work_dir: Path, nproc: int = 2, port: int = 29500,
          cfg_options: Sequence[str] = ()) -> Outcome:
    start = time.perf_counter()
    options = ['--cfg-options', *cfg_options] if cfg_options else []
    run(['bash', TOOLS / 'dist_train.sh', task.config, nproc, '--work-dir', work_dir, *options],
        env={'PORT': str(port)})
    outcome = Outcome(task, work_dir, train_seconds=time.perf_counter() - start)
    outcome.checkpoint = latest_checkpoint(work_dir)
    outcome.val_history = [r for r in read_scalars(work_dir) if task.metric in r]
    return outcome


def evaluate(outcome: Outcome) -> None:
    test_dir = outcome.work_dir / 'test'
    run([sys.executable, TOOLS / 'test.py', outcome.task.config, outcome.checkpoint,
         '--work-dir', test_dir])
    outcome.test_metrics = read_test_metrics(test_dir)


def latest_checkpoint(work_dir: Path) -> Path:
    """The checkpoint mmengine's ``last_checkpoint`` file names."""
    pointer = work_dir / 'last_checkpoint'
    if not pointer.is_file():
        raise FileNotFoundError(f'no checkpoint was saved in {work_dir}')
    return Path(pointer.read_text().strip())


def read_scalars(work_dir: Path) -> List[Dict[str, float]]:
    """Every record mmengine's LocalVisBackend logged (losses per logging step, metrics)."""
    files = sorted(work_dir.glob('*/vis_data/scalars.json'))
    if not files:
        raise FileNotFoundError(f'no */vis_data/scalars.json in {work_dir}')
    return [json.loads(line) for line in files[-1].read_text().splitlines() if line.strip()]


def read_test_metrics(work_dir: Path) -> Dict[str, float]:
    """The metrics a ``tools/test.py`` run saved as ``<timestamp>/<timestamp>.json``."""
    runs = sorted(p for p in work_dir.glob('*/*.json') if p.stem == p.parent.name)
    if not runs:
        raise FileNotFoundError(f'no metrics file in {work_dir}')
    return json.loads(runs[-1].read_text())


def draw_predictions(outcome: Outcome, images: Sequence[Path], out_dir: Path,
                     top_k: Optional[int] = None) -> None:
    """The framework's own inference API and visualiser on ``images``.

    Detection draws the boxes scoring at least 0.3, or with ``top_k`` the ``top_k`` best boxes
    whatever their score (on photos of things the tiny model never saw, every score is low).
    """
    import mmcv
    out_dir.mkdir(parents=True, exist_ok=True)
    config, checkpoint = str(REPO / outcome.task.config), str(outcome.checkpoint)
    if outcome.task.framework == 'mmdet':
        from mmdet.apis import inference_detector as infer
        from mmdet.apis import init_detector as init
        from mmdet.visualization import DetLocalVisualizer as Visualizer
        options = dict(pred_score_thr=0.0 if top_k else 0.3)
    else:
        from mmseg.apis import inference_model as infer
        from mmseg.apis import init_model as init
        from mmseg.visualization import SegLocalVisualizer as Visualizer
        options = dict(with_labels=True)
    model = init(config, checkpoint, device='cpu')
    visualizer = Visualizer(name=f'{outcome.task.name}_{out_dir.name}', alpha=0.5)
    visualizer.dataset_meta = model.dataset_meta
    for image in images:
        result = infer(model, str(image))
        if top_k and 'pred_instances' in result:
            result.pred_instances = result.pred_instances[:top_k]  # sorted by score
        out_file = out_dir / f'{image.stem}.jpg'
        visualizer.add_datasample(image.stem, mmcv.imread(str(image), channel_order='rgb'),
                                  result, draw_gt=False, out_file=str(out_file), **options)
        outcome.pictures.append(out_file)


def plot_curves(outcomes: Sequence[Outcome], out_file: Path) -> Path:
    """Training loss and validation metric of every task, one column per task."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(2, len(outcomes), figsize=(5 * len(outcomes), 6), squeeze=False)
    for column, outcome in enumerate(outcomes):
        records = read_scalars(outcome.work_dir)
        losses = [(r['step'], r['loss']) for r in records if 'loss' in r]
        axes[0][column].plot(*zip(*losses))
        axes[0][column].set(title=outcome.task.name, xlabel='iteration', ylabel='training loss')
        axes[0][column].set_yscale('log')
        if outcome.val_history:
            steps = [r['step'] for r in outcome.val_history]
            values = [r[outcome.task.metric] for r in outcome.val_history]
            axes[1][column].plot(steps, values, marker='o')
        axes[1][column].set(xlabel='evaluation (epoch or iteration)',
                            ylabel=f'held-out {outcome.task.metric}')
    fig.tight_layout()
    fig.savefig(out_file, dpi=100)
    plt.close(fig)
    return out_file


def summary(outcomes: Sequence[Outcome], curves: Path, seconds: float) -> str:
    rows = [f'{"model":<18} {"metric":<14} {"first eval":>10} {"final":>8} {"train s":>8}  '
            'checkpoint']
    for o in outcomes:
        first = o.val_history[0][o.task.metric] if o.val_history else float('nan')
        final = o.test_metrics.get(o.task.metric, float('nan'))
        rows.append(f'{o.task.name:<18} {o.task.metric:<14} {first:>10.3f} {final:>8.3f} '
                    f'{o.train_seconds:>8.0f}  {o.checkpoint}')
    rows.append(f'training curves: {curves}')
    for o in outcomes:
        folders = sorted({str(p.parent) for p in o.pictures})
        rows.append(f'{o.task.name} pictures ({len(o.pictures)}): {", ".join(folders)}')
    rows.append('(on the photos, detection draws its 3 best boxes whatever their score: the tiny '
                'model knows only circles, squares and triangles)')
    rows.append(f'total time: {seconds / 60:.1f} min')
    return '\n'.join(rows)


def photos() -> List[Path]:
    found = sorted(p for p in PHOTOS.glob('*') if p.suffix.lower() in ('.jpg', '.jpeg', '.png'))
    if not found:
        raise FileNotFoundError(f'no photos in {PHOTOS}')
    return found


def main(work_dir: Path, nproc: int = 2) -> List[Outcome]:
    start = time.perf_counter()
    make_datasets()
    outcomes = []
    for task in TASKS:
        outcome = train(task, work_dir / task.name, nproc)
        evaluate(outcome)
        held_out = sorted((REPO / task.val_split).glob('*.jpg'))[:4]
        draw_predictions(outcome, held_out, work_dir / task.name / 'held_out')
        draw_predictions(outcome, photos(), work_dir / task.name / 'photos', top_k=3)
        outcomes.append(outcome)
    curves = plot_curves(outcomes, work_dir / 'training_curves.png')
    print('\n' + summary(outcomes, curves, time.perf_counter() - start))
    return outcomes
