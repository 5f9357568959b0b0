"""Whole-model latency: PyTorch eager (default and deploy form) against onnxruntime.

``tools/benchmark.py --deploy`` prints :func:`format_table` of :func:`benchmark_models`. Each
model is built from its config with random weights (latency does not depend on the values,
except through how many boxes reach NMS), batch 1, and timed, the runtimes taking turns
within each repetition so that a noisy machine slows them alike:

* ``eager``: ``model.predict`` in eval mode under ``no_grad`` (network + mmdet/mmseg
  post-processing), default form; ``eager-deploy``: the same after ``switch_to_deploy()``;
* ``onnxruntime``: the exported graph (network + decoding + NMS / resize + argmax),
  ``intra_op_num_threads`` = the torch thread count, all graph optimisations on.

:func:`profile_op_types` splits an onnxruntime run by operator type (where the time goes).
"""
import copy
import json
import os
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[2]
# (name, config, input (H, W)): the rows, and the model users compare SSDLite-EMO with.
DEFAULT_MODELS: Tuple[Tuple[str, str, Tuple[int, int]], ...] = (
    ('SSDLite-EMO-1M', str(REPO / 'configs/ssdlite/emo_1m.py'), (320, 320)),
    ('SSDLite-EMO-5M', str(REPO / 'configs/ssdlite/emo_5m.py'), (320, 320)),
    ('SSDLite-MobileNetV2', 'mmdet::ssd/ssdlite_mobilenetv2-scratch_8xb24-600e_coco.py',
     (320, 320)),
    ('DeepLabv3-EMO-1M', str(REPO / 'configs/deeplabv3/emo_1m.py'), (512, 512)),
    # Smaller than the config's 800x1333 test size, which is slow on a CPU.
    ('MaskRCNN-EMO-1M', str(REPO / 'configs/mask_rcnn/emo_1m.py'), (512, 512)),
)


def _predict_step(model: torch.nn.Module, task: str, x: torch.Tensor) -> Callable[[], object]:
    if task == 'detection':
        from mmdet.structures import DetDataSample
        sample = DetDataSample(metainfo=dict(img_shape=x.shape[2:], ori_shape=x.shape[2:],
                                             scale_factor=(1., 1.)))
    else:
        from mmseg.structures import SegDataSample
        sample = SegDataSample(metainfo=dict(img_shape=x.shape[2:], ori_shape=x.shape[2:],
                                             pad_shape=x.shape[2:], padding_size=[0] * 4))

    def step() -> object:
        with torch.no_grad():
            return model.predict(x, [sample.clone()])
    return step


def time_interleaved(steps: Dict[str, Callable[[], object]], reps: int,
                     warmup: int) -> Dict[str, float]:
    """Median milliseconds per call of each step, the steps taking turns in each repetition."""
    for step in steps.values():
        for _ in range(warmup):
            step()
    times: Dict[str, List[float]] = {name: [] for name in steps}
    for _ in range(reps):
        for name, step in steps.items():
            start = time.perf_counter()
            step()
            times[name].append(1e3 * (time.perf_counter() - start))
    return {name: statistics.median(ts) for name, ts in times.items()}


def _ort_session(onnx_file: str, threads: int, profile_prefix: Optional[str] = None):
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    if profile_prefix:
        options.enable_profiling = True
        options.profile_file_prefix = profile_prefix
    return ort.InferenceSession(onnx_file, options, providers=['CPUExecutionProvider'])


def benchmark_models(models: Sequence[Tuple[str, str, Tuple[int, int]]] = DEFAULT_MODELS,
                     threads: Optional[int] = None, reps: int = 20,
                     warmup: int = 3) -> List[dict]:
    """One row per (model, runtime): ``model``, ``size``, ``runtime``, ``ms``, ``speedup``
    (over ``eager`` of the same model)."""
    from .export import build_deploy_model, export_model, load_config
    threads = threads or torch.get_num_threads()
    torch.set_num_threads(threads)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, config, size in models:
            cfg = load_config(config)
            if cfg.model.get('bbox_head', {}).get('type') == 'SSDHead':
                # mmdet 3.3's SSDHead cannot predict (no loss_cls): its fixed subclass can.
                import emo_mm.models.dense_heads  # noqa: F401  (registers FixedSSDHead)
                cfg.model.bbox_head.type = 'FixedSSDHead'
            if cfg.model.backbone.get('init_cfg'):
                cfg.model.backbone.init_cfg = None  # random weights: no download
            x = torch.randn(1, 3, *size, generator=torch.Generator().manual_seed(0))
            _, task, eager, _ = build_deploy_model(cfg, None, deploy_form=False)
            if hasattr(eager, 'roi_head'):
                # Two-stage: random weights score every RoI ~1/81 per class, below score_thr,
                # so nothing reached the mask head; a sharper classifier keeps max_per_img
                # boxes, as a trained model does on a busy image.
                with torch.no_grad():
                    eager.roi_head.bbox_head.fc_cls.weight.mul_(20.)
            steps = {'eager': _predict_step(eager, task, x)}
            deployed = copy.deepcopy(eager)
            if hasattr(deployed.backbone, 'switch_to_deploy'):
                deployed.backbone.switch_to_deploy()
                steps['eager-deploy'] = _predict_step(deployed, task, x)
            onnx_file = os.path.join(tmp, f'{len(rows)}.onnx')
            export_model(cfg, task, copy.deepcopy(eager), onnx_file, shape=size)
            session = _ort_session(onnx_file, threads)
            feed = {'input': x.numpy()}
            if len(session.get_inputs()) > 1:  # two-stage graphs: each image's (h, w)
                feed['img_shape'] = np.array([list(size)], dtype=np.int64)
            steps['onnxruntime'] = lambda session=session, feed=feed: session.run(None, feed)
            times = time_interleaved(steps, reps, warmup)
            for runtime, ms in times.items():
                rows.append(dict(model=name, size=f'{size[0]}x{size[1]}', runtime=runtime,
                                 ms=ms, speedup=times['eager'] / ms, threads=threads))
    return rows


def format_table(rows: List[dict]) -> str:
    lines = [f'{"model":22} {"input":9} {"runtime":13} {"ms":>8} {"vs eager":>8}']
    for row in rows:
        lines.append(f'{row["model"]:22} {row["size"]:9} {row["runtime"]:13} '
                     f'{row["ms"]:8.1f} {row["speedup"]:7.2f}x')
    return '\n'.join(lines)


def profile_op_types(onnx_file: str, size: Tuple[int, int], threads: Optional[int] = None,
                     runs: int = 10) -> Dict[str, float]:
    """Milliseconds per run spent in each ONNX operator type (after onnxruntime's fusions),
    largest first."""
    threads = threads or torch.get_num_threads()
    with tempfile.TemporaryDirectory() as tmp:
        session = _ort_session(onnx_file, threads, profile_prefix=os.path.join(tmp, 'prof'))
        feed = {'input': np.random.default_rng(0).standard_normal((1, 3, *size), np.float32)}
        for _ in range(runs):
            session.run(None, feed)
        events = json.loads(Path(session.end_profiling()).read_text())
    totals: Dict[str, float] = defaultdict(float)
    for event in events:
        if event.get('cat') == 'Node' and event['name'].endswith('_kernel_time'):
            totals[event['args']['op_name']] += event['dur'] / 1e3 / runs
    return dict(sorted(totals.items(), key=lambda kv: -kv[1]))


def print_benchmark(threads: Optional[int] = None, reps: int = 20, warmup: int = 3) -> List[dict]:
    """Runs :func:`benchmark_models` on :data:`DEFAULT_MODELS` and prints the table."""
    threads = threads or torch.get_num_threads()
    print(f'whole models, batch 1, {threads} threads, median of {reps} runs after {warmup} '
          'warm-up runs (random weights)')
    rows = benchmark_models(threads=threads, reps=reps, warmup=warmup)
    print(format_table(rows))
    return rows
