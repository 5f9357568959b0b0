"""The main job on the embedded default: train, evaluate and look at predictions, on CPU
(also on a machine with GPUs, which it leaves unused and says so).

    python tools/demo.py [--work-dir work_dirs/demo] [--nproc 2]

1. write the tiny datasets (``tools/make_tiny_datasets.py``) into ``<work-dir>/data``;
2. train SSDLite-EMO-1M and DeepLabv3-EMO-1M on them with ``tools/dist_train.sh`` (2 processes;
   gloo on CPU);
3. evaluate the final checkpoints with ``tools/test.py`` (CocoMetric, IoUMetric);
4. run the mmdet and mmseg inference APIs on the photos in ``demo/`` and on held-out tiny images,
   saving pictures of the predictions;
5. plot the training curves; print a summary.

Every step is the user-facing tool or API itself, run as a user would run it, in the work dir.
The console shows progress and results; each tool's full output is in ``<work-dir>/**/*.log``.
"""
import argparse
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # a checkout runs uninstalled

from emo_mm.analysis import latest_checkpoint, read_scalars, read_test_metrics  # noqa: E402

TOOLS = REPO / 'tools'
PHOTOS = REPO / 'demo'
# What the console shows of a tool's output: mmengine's progress and metric lines, errors.
PROGRESS = re.compile(r'(Epoch|Iter)\((train|val|test)\)|^error: |Error')
FIELDS = re.compile(r'\b(eta|loss|coco/bbox_mAP|mIoU|aAcc): ([\w.:-]+)')


@dataclass(frozen=True)
class Task:
    """One model of the main job: its config, the metric it is judged by, how it is shown."""
    name: str
    config: str
    metric: str  # key in the evaluation results, e.g. 'coco/bbox_mAP'
    framework: str  # 'mmdet' or 'mmseg'
    val_split: str  # folder (under the run's directory) of held-out images to draw on


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


def progress_line(line: str) -> str:
    """A short form of one of mmengine's progress or metric lines."""
    line = line.split(' - INFO - ', 1)[-1].strip()
    head = re.match(r'(Epoch|Iter)\(\w+\)\s*(\[[^\]]*\])*', line)
    fields = FIELDS.findall(line)
    if head and fields:
        return head.group(0) + '  ' + '  '.join(f'{k} {v}' for k, v in fields)
    return line


def run(command: Sequence, cwd: Path, log_file: Path, label: str,
        env: Optional[dict] = None) -> None:
    """Runs a tool in ``cwd``; its whole output goes to ``log_file``, the console shows its
    progress lines. A failure shows the end of the log and raises."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    print(f'[{label}] $ {" ".join(map(str, command))}\n[{label}]   full log: {log_file}',
          flush=True)
    with open(log_file, 'w') as log:
        proc = subprocess.Popen([str(c) for c in command], cwd=cwd, text=True, bufsize=1,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                env={**os.environ, **(env or {})})
        for line in proc.stdout:
            log.write(line)
            if PROGRESS.search(line):
                print(f'[{label}]   {progress_line(line)}', flush=True)
        proc.wait()
    if proc.returncode != 0:
        tail = ''.join(log_file.read_text().splitlines(keepends=True)[-30:])
        raise RuntimeError(f'{label}: {command[1]} failed with exit code {proc.returncode}; '
                           f'the end of {log_file}:\n{tail}')


def train(task: Task, run_dir: Path, nproc: int = 2, port: int = 29500,
          cfg_options: Sequence[str] = (), env: Optional[Dict[str, str]] = None) -> Outcome:
    """Trains ``task`` with tools/dist_train.sh in ``run_dir`` (which holds ``data/``);
    ``env`` adds to the tool's environment."""
    work_dir = run_dir / task.name
    start = time.perf_counter()
    options = ['--cfg-options', *cfg_options] if cfg_options else []
    run(['bash', TOOLS / 'dist_train.sh', REPO / task.config, nproc, '--work-dir', work_dir,
         *options], run_dir, work_dir / 'train.log', f'{task.name} train',
        env={**(env or {}), 'PORT': str(port)})
    return trained_outcome(task, work_dir, time.perf_counter() - start)


def trained_outcome(task: Task, work_dir: Path, train_seconds: float = 0.) -> Outcome:
    """What a finished training of ``task`` left in ``work_dir``: its last checkpoint and the
    held-out evaluations logged on the way."""
    return Outcome(task, work_dir, checkpoint=latest_checkpoint(work_dir),
                   train_seconds=train_seconds,
                   val_history=[r for r in read_scalars(work_dir) if task.metric in r])


def evaluate(outcome: Outcome, run_dir: Path) -> None:
    test_dir = outcome.work_dir / 'test'
    run([sys.executable, TOOLS / 'test.py', REPO / outcome.task.config, outcome.checkpoint,
         '--work-dir', test_dir], run_dir, test_dir / 'test.log', f'{outcome.task.name} test')
    outcome.test_metrics = read_test_metrics(test_dir)


def draw_predictions(outcome: Outcome, images: Sequence[Path], out_dir: Path,
                     top_k: Optional[int] = None) -> None:
    """The framework's own inference API and visualiser on ``images``.

    Detection draws the boxes scoring at least 0.3, or with ``top_k`` the ``top_k`` best boxes
    whatever their score (on photos of things the tiny model never saw, every score is low).
    """
    import mmcv
    from mmengine.logging import MMLogger
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
    # The APIs log through mmengine's current logger: into the work dir, not the console.
    MMLogger.get_instance(f'demo_{outcome.task.name}_{out_dir.name}', log_level='WARNING',
                          log_file=str(out_dir / 'inference.log'))
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
    print(f'[{outcome.task.name}] {len(images)} pictures of predictions in {out_dir}', flush=True)


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


def run_on_cpu() -> str:
    """Hides any GPU from the demo's tools (``CUDA_VISIBLE_DEVICES=``): the demo reproduces
    the CPU figures the README states, and its 2 training processes must not share one GPU.
    Returns the line that says so."""
    import torch
    gpus = torch.cuda.device_count()
    os.environ['CUDA_VISIBLE_DEVICES'] = ''
    if not gpus:
        return 'demo: on CPU (no GPU visible)'
    return (f'demo: on CPU on purpose ({gpus} GPU{"s" if gpus > 1 else ""} left unused: the '
            f'demo reproduces the CPU figures). Train on the GPUs with tools/dist_train.sh '
            f'CONFIG {gpus}')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--work-dir', type=Path, default=REPO / 'work_dirs' / 'demo',
                        help='where data, checkpoints, logs, pictures and curves go')
    parser.add_argument('--nproc', type=int, default=2, help='training processes (default 2)')
    args = parser.parse_args()
    if args.nproc < 1:
        parser.error(f'--nproc must be at least 1, got {args.nproc}')
    print(run_on_cpu(), flush=True)
    run_dir = args.work_dir.resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    run([sys.executable, TOOLS / 'make_tiny_datasets.py', '--root', run_dir / 'data'], run_dir,
        run_dir / 'make_tiny_datasets.log', 'data')
    outcomes = []
    for task in TASKS:
        outcome = train(task, run_dir, args.nproc)
        evaluate(outcome, run_dir)
        held_out = sorted((run_dir / task.val_split).glob('*.jpg'))[:4]
        draw_predictions(outcome, held_out, outcome.work_dir / 'held_out')
        draw_predictions(outcome, photos(), outcome.work_dir / 'photos', top_k=3)
        outcomes.append(outcome)
    curves = plot_curves(outcomes, run_dir / 'training_curves.png')
    print('\n' + summary(outcomes, curves, time.perf_counter() - start))


if __name__ == '__main__':
    main()
