"""Whole-model latency of exported models (``tools/benchmark.py --deploy``, which imports this
file): onnxruntime against other models, against PyTorch eager, and against OpenVINO on the
same files. A timing harness of the repository (its configs), not part of the package.

``tools/benchmark.py --deploy`` prints :func:`print_deploy_benchmark`. Every model is built
from its config with seeded random weights, batch 1, and exported with ``tools/export_onnx.py``'s
default options (a static graph where the config's test pipeline fixes the size: SSDLite).

Exported files are timed each in a process of its own (:func:`time_in_processes`), the
contenders taking turns by rounds, one process per contender and round: a runtime's idle worker
threads (onnxruntime's spin after a call; OpenVINO's pool stays alive) slow down every other
session held in the same process, which on a 2-core machine nearly doubled onnxruntime's
2-thread latency. The median call of all rounds is reported. PyTorch eager against onnxruntime
(:func:`compare_eager`) shares one process, taking turns by blocks of calls, each block after its
own warm-up calls.

* :func:`compare_models`: SSDLite-EMO-1M/2M/5M against SSDLite-MobileNetV2 (mmdet's config,
  its head as ``FixedSSDHead``), the whole graph with NMS, at each thread count; with random
  weights every SSD score sits near 1/81, below ``score_thr``, so no box reaches NMS; the
  ``nms`` case lifts ten classes' logits (:func:`lift_class_logits`) so that every level's
  ``nms_pre`` candidates pass ``score_thr`` and NMS keeps ``max_per_img`` boxes.
* :func:`compare_eager`: onnxruntime against ``model.predict`` (PyTorch eager, deploy form:
  ``switch_to_deploy()``, with mmdet's / mmseg's post-processing), same threads.
* :func:`compare_runtimes`: each file of SSDLite-EMO-1M, DeepLabv3-EMO-1M and
  SSDLite-MobileNetV2 in onnxruntime and in OpenVINO (a column per runtime).
* :func:`profile_op_types`: onnxruntime's own profile of a run, by operator type (after its
  fusions), each node's median call.

Each (model, case) is built and exported once per run (:class:`Exports`).
"""
import copy
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
MOBILENET_V2 = 'mmdet::ssd/ssdlite_mobilenetv2-scratch_8xb24-600e_coco.py'
Model = Tuple[str, str, Tuple[int, int]]  # (name, config, input (H, W))
# The models users compare: SSDLite-EMO against SSDLite-MobileNetV2, the reference row last.
SSD_MODELS: Tuple[Model, ...] = (
    ('SSDLite-EMO-1M', str(REPO / 'configs/ssdlite/emo_1m.py'), (320, 320)),
    ('SSDLite-EMO-2M', str(REPO / 'configs/ssdlite/emo_2m.py'), (320, 320)),
    ('SSDLite-EMO-5M', str(REPO / 'configs/ssdlite/emo_5m.py'), (320, 320)),
    ('SSDLite-MobileNetV2', MOBILENET_V2, (320, 320)),
)
EAGER_MODELS: Tuple[Model, ...] = (
    ('SSDLite-EMO-1M', str(REPO / 'configs/ssdlite/emo_1m.py'), (320, 320)),
    ('DeepLabv3-EMO-1M', str(REPO / 'configs/deeplabv3/emo_1m.py'), (512, 512)),
    # Smaller than the config's 800x1333 test size, which is slow on a CPU.
    ('MaskRCNN-EMO-1M', str(REPO / 'configs/mask_rcnn/emo_1m.py'), (512, 512)),
)
# The models of the runtime comparison (onnxruntime against OpenVINO, same files).
RUNTIME_MODELS: Tuple[Model, ...] = (
    ('SSDLite-EMO-1M', str(REPO / 'configs/ssdlite/emo_1m.py'), (320, 320)),
    ('DeepLabv3-EMO-1M', str(REPO / 'configs/deeplabv3/emo_1m.py'), (512, 512)),
    ('SSDLite-MobileNetV2', MOBILENET_V2, (320, 320)),
)
RUNTIMES = ('onnxruntime', 'openvino')
NMS_CASES = {'none': 'random weights: no box reaches NMS',
             'nms': 'ten classes lifted: NMS on every candidate, max_per_img kept'}


def build_random(config: str, seed: int = 0):
    """``(cfg, task, model)``: the config's model in eval mode (default form) with seeded
    random weights (no checkpoint download); mmdet's SSDHead as FixedSSDHead."""
    from emo_mm.deploy.export import build_deploy_model, load_config
    cfg = load_config(config)
    if cfg.model.get('bbox_head', {}).get('type') == 'SSDHead':
        # mmdet 3.3's SSDHead cannot predict (no loss_cls): its fixed subclass can.
        import emo_mm.models.dense_heads  # noqa: F401  (registers FixedSSDHead)
        cfg.model.bbox_head.type = 'FixedSSDHead'
    if cfg.model.backbone.get('init_cfg'):
        cfg.model.backbone.init_cfg = None  # random weights: no download
    # A scope of its own, so that switching between mmdet and mmseg models is not a warning.
    from mmengine.registry import DefaultScope
    DefaultScope.get_instance(f'emo_mm_benchmark_{time.perf_counter_ns()}',
                              scope_name=cfg.default_scope)
    torch.manual_seed(seed)
    _, task, model, _ = build_deploy_model(cfg, None, deploy_form=False)
    return cfg, task, model


def lift_class_logits(model: torch.nn.Module, classes: int = 10, logit: float = 4.0) -> None:
    """Adds ``logit`` to the bias of the first ``classes`` classes in every level's classifier
    of an SSD head (softmax over the classes and background), in place: with random weights
    their scores become ~0.09, above SSD's ``score_thr`` (0.02), at every anchor. A two-stage
    detector's box classifier likewise (80 classes: ~0.09, above its 0.05, at every RoI; the
    best ``max_per_img`` then reach the mask head)."""
    if hasattr(model, 'roi_head'):
        with torch.no_grad():
            model.roi_head.bbox_head.fc_cls.bias[:classes] += logit
        return
    head = model.bbox_head
    with torch.no_grad():
        for branch in head.cls_convs:
            conv = [m for m in branch.modules() if isinstance(m, torch.nn.Conv2d)][-1]
            conv.bias.view(-1, head.cls_out_channels)[:, :classes] += logit


def export_default(cfg, task: str, model: torch.nn.Module, size: Tuple[int, int],
                   out: str) -> dict:
    """Exports ``model`` as ``tools/export_onnx.py`` does by default (static where the
    config's test pipeline fixes the size, traced at ``size`` otherwise)."""
    from emo_mm.deploy.export import export_model
    from emo_mm.deploy.input_size import fixed_input_size
    fixed = fixed_input_size(cfg)
    return export_model(cfg, task, copy.deepcopy(model), out, shape=fixed or size,
                        dynamic=fixed is None)


def ort_session(onnx_file: str, threads: int, profile_prefix: Optional[str] = None,
                optimized_model: Optional[str] = None):
    """A CPU session with ``threads`` intra-op threads and all graph optimisations;
    ``optimized_model``: where onnxruntime saves the graph it actually runs."""
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only (see emo_mm.deploy.session)
    if profile_prefix:
        options.enable_profiling = True
        options.profile_file_prefix = profile_prefix
    if optimized_model:
        options.optimized_model_filepath = optimized_model
    return ort.InferenceSession(onnx_file, options, providers=['CPUExecutionProvider'])


def runtime_session(runtime: str, onnx_file: str, threads: int):
    """A CPU session of ``runtime`` with ``threads`` threads: onnxruntime's as
    :func:`ort_session`, OpenVINO's as the wrappers open it (float32)."""
    if runtime == 'onnxruntime':
        return ort_session(onnx_file, threads)
    from emo_mm.deploy.session import open_session
    return open_session(onnx_file, runtime, threads)


def onnx_step(session, size: Tuple[int, int]) -> Callable[[], list]:
    """One call of the whole graph on a seeded random batch of one image."""
    feed = {'input': np.random.default_rng(0).standard_normal((1, 3, *size), np.float32)}
    return lambda: session.run(None, feed)


def eager_step(model: torch.nn.Module, task: str, size: Tuple[int, int]) -> Callable[[], object]:
    """One ``model.predict`` of a seeded random batch of one image, under ``no_grad``."""
    x = torch.from_numpy(np.random.default_rng(0).standard_normal((1, 3, *size), np.float32))
    if task == 'detection':
        from mmdet.structures import DetDataSample
        sample = DetDataSample(metainfo=dict(img_shape=size, ori_shape=size,
                                             scale_factor=(1., 1.)))
    else:
        from mmseg.structures import SegDataSample
        sample = SegDataSample(metainfo=dict(img_shape=size, ori_shape=size, pad_shape=size,
                                             padding_size=[0] * 4))

    def step() -> object:
        with torch.no_grad():
            return model.predict(x, [sample.clone()])
    return step


def time_file(runtime: str, onnx_file: str, threads: int, size: Tuple[int, int], calls: int,
              warmup: int) -> dict:
    """In this process: ``ms`` of ``calls`` calls of ``onnx_file`` in ``runtime`` after
    ``warmup`` untimed ones, and ``rows``: each output's first dimension (a detector's boxes)."""
    step = onnx_step(runtime_session(runtime, onnx_file, threads), size)
    outputs = step()
    for _ in range(warmup):
        step()
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        step()
        times.append(1e3 * (time.perf_counter() - start))
    return dict(ms=times, rows=[len(o) if np.ndim(o) else 1 for o in outputs])


Contender = Tuple[str, str, int, Tuple[int, int]]  # (runtime, onnx file, threads, (H, W))


def time_in_processes(contenders: Dict[object, Contender], rounds: int, calls: int,
                      warmup: int) -> Dict[object, dict]:
    """``{key: dict(ms=median call, rows=...)}``: each contender timed by :func:`time_file` in
    a fresh Python process per round, the contenders taking turns (the order rotates by one each
    round), so that no session's idle threads share a process with another's."""
    keys = list(contenders)
    times: Dict[object, List[float]] = {key: [] for key in keys}
    rows: Dict[object, list] = {}
    for round_ in range(rounds):
        for key in keys[round_ % len(keys):] + keys[:round_ % len(keys)]:
            runtime, onnx_file, threads, size = contenders[key]
            command = [sys.executable, __file__, '--time-file', runtime, onnx_file,
                       str(threads), str(size[0]), str(size[1]), str(calls), str(warmup)]
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode:
                raise RuntimeError(f'timing {onnx_file} in {runtime} failed:\n{done.stderr}')
            result = json.loads(done.stdout.strip().splitlines()[-1])
            times[key] += result['ms']
            rows[key] = result['rows']
    return {key: dict(ms=statistics.median(times[key]), rows=rows[key]) for key in keys}


def time_blocks(steps: Dict[str, Callable[[], object]], blocks: int, calls: int,
                warmup: int) -> Dict[str, float]:
    """Median milliseconds per call of each step; the steps take turns by blocks of
    ``calls`` timed calls, each block after ``warmup`` untimed ones of the same step."""
    times: Dict[str, List[float]] = {name: [] for name in steps}
    for _ in range(blocks):
        for name, step in steps.items():
            for _ in range(warmup):
                step()
            for _ in range(calls):
                start = time.perf_counter()
                step()
                times[name].append(1e3 * (time.perf_counter() - start))
    return {name: statistics.median(ts) for name, ts in times.items()}


class Exports:
    """Each (model, case) built and exported once per benchmark run, in a temporary folder:
    ``get(model, case)`` -> ``(task, eager model, onnx file)``."""

    def __init__(self, folder: str) -> None:
        self.folder = folder
        self.made: Dict[Tuple[str, str], Tuple[str, torch.nn.Module, str]] = {}

    def get(self, model: Model, case: str):
        name, config, size = model
        if (name, case) not in self.made:
            cfg, task, module = build_random(config)
            if case == 'nms' and task == 'detection':
                lift_class_logits(module)
            onnx_file = os.path.join(self.folder, f'{len(self.made)}.onnx')
            export_default(cfg, task, module, size, onnx_file)
            self.made[name, case] = (task, module, onnx_file)
        return self.made[name, case]


def compare_models(exports: Exports, models: Sequence[Model] = SSD_MODELS,
                   threads: Sequence[int] = (2, 1), cases: Sequence[str] = tuple(NMS_CASES),
                   rounds: int = 10, calls: int = 10, warmup: int = 3) -> List[dict]:
    """Rows ``model, case, threads, ms, vs_last, boxes``: every model's graph in
    onnxruntime, each in its own process per round (:func:`time_in_processes`);
    ``vs_last``: latency over the last model's (SSDLite-MobileNetV2 by default)."""
    rows = []
    for case in cases:
        files = {model[0]: exports.get(model, case)[2] for model in models}
        for count in threads:
            timed = time_in_processes(
                {name: ('onnxruntime', files[name], count, size) for name, _, size in models},
                rounds, calls, warmup)
            last = timed[models[-1][0]]['ms']
            rows += [dict(model=name, case=case, threads=count, ms=t['ms'],
                          vs_last=t['ms'] / last, boxes=t['rows'][1])
                     for name, t in timed.items()]
    return rows


def compare_runtimes(exports: Exports, models: Sequence[Model] = RUNTIME_MODELS,
                     threads: Sequence[int] = (2, 1), runtimes: Sequence[str] = RUNTIMES,
                     case: str = 'none', rounds: int = 10, calls: int = 10,
                     warmup: int = 3) -> List[dict]:
    """Rows ``model, threads, <runtime>: ms`` for each runtime, and ``speedup`` (the first
    runtime's latency over each other's): the same file of each model in every runtime, all
    (model, runtime) pairs taking turns by rounds, each in its own process
    (:func:`time_in_processes`), at each thread count."""
    rows = []
    files = {model[0]: exports.get(model, case)[2] for model in models}
    for count in threads:
        timed = time_in_processes({(name, runtime): (runtime, files[name], count, size)
                                   for name, _, size in models for runtime in runtimes},
                                  rounds, calls, warmup)
        for name, _, _ in models:
            row = dict(model=name, threads=count,
                       **{runtime: timed[name, runtime]['ms'] for runtime in runtimes})
            row['speedup'] = {runtime: row[runtimes[0]] / row[runtime]
                              for runtime in runtimes[1:]}
            rows.append(row)
    return rows


def format_runtimes(rows: List[dict], runtimes: Sequence[str]) -> str:
    header = f'{"model":22} {"threads":>7} ' + ' '.join(f'{r + " ms":>16}' for r in runtimes)
    lines = [header + ''.join(f' {runtimes[0] + " / " + r:>24}' for r in runtimes[1:])]
    for row in rows:
        lines.append(f'{row["model"]:22} {row["threads"]:7d} ' +
                     ' '.join(f'{row[r]:16.2f}' for r in runtimes) +
                     ''.join(f' {row["speedup"][r]:23.2f}x' for r in runtimes[1:]))
    return '\n'.join(lines)


def available_runtimes() -> Tuple[str, ...]:
    """The runtimes installed here, onnxruntime first."""
    import importlib.util
    return tuple(r for r in RUNTIMES if importlib.util.find_spec(r) is not None)


def compare_eager(exports: Exports, models: Sequence[Model] = EAGER_MODELS,
                  threads: Sequence[int] = (2, 1), blocks: int = 10, calls: int = 5,
                  warmup: int = 2) -> List[dict]:
    """Rows ``model, threads, runtime, ms, speedup``: PyTorch eager (deploy form) and
    onnxruntime, taking turns by blocks; ``speedup``: eager's latency over onnxruntime's.
    Detectors run the ``nms`` case (boxes reach NMS in both)."""
    rows = []
    for model_spec in models:
        name, _, size = model_spec
        task, model, onnx_file = exports.get(model_spec, 'nms')
        model = copy.deepcopy(model)
        if hasattr(model.backbone, 'switch_to_deploy'):
            model.backbone.switch_to_deploy()
        for count in threads:
            torch.set_num_threads(count)
            steps = {'PyTorch eager': eager_step(model, task, size),
                     'onnxruntime': onnx_step(ort_session(onnx_file, count), size)}
            times = time_blocks(steps, blocks, calls, warmup)
            rows += [dict(model=name, size=f'{size[0]}x{size[1]}', threads=count,
                          runtime=runtime, ms=ms, speedup=times['PyTorch eager'] / ms)
                     for runtime, ms in times.items()]
    return rows


def profile_op_types(onnx_file: str, size: Tuple[int, int], threads: int = 2,
                     runs: int = 20) -> Dict[str, float]:
    """Milliseconds per run spent in each operator type (onnxruntime's profile, after its
    fusions), largest first: each node's median over ``runs`` calls (a call that another
    process preempted does not count), summed by type."""
    with tempfile.TemporaryDirectory() as tmp:
        session = ort_session(onnx_file, threads, profile_prefix=os.path.join(tmp, 'prof'))
        step = onnx_step(session, size)
        for _ in range(runs):
            step()
        events = json.loads(Path(session.end_profiling()).read_text())
    per_node: Dict[str, List[float]] = defaultdict(list)
    op_type = {}
    for event in events:
        if event.get('cat') == 'Node' and event['name'].endswith('_kernel_time'):
            per_node[event['name']].append(event['dur'] / 1e3)
            op_type[event['name']] = event['args']['op_name']
    totals: Dict[str, float] = defaultdict(float)
    for node, times in per_node.items():
        totals[op_type[node]] += statistics.median(times)
    return dict(sorted(totals.items(), key=lambda kv: -kv[1]))


def profile_models(exports: Exports, models: Sequence[Model] = (SSD_MODELS[0], SSD_MODELS[-1]),
                   threads: int = 2, case: str = 'nms', runs: int = 20
                   ) -> Dict[str, Dict[str, float]]:
    """:func:`profile_op_types` of each model's default export (``case`` as in
    :func:`compare_models`)."""
    return {model[0]: profile_op_types(exports.get(model, case)[2], model[2], threads, runs)
            for model in models}


def format_models(rows: List[dict]) -> str:
    last = rows[-1]['model']
    lines = [f'{"model":22} {"threads":>7} {"case":5} {"ms":>8} {"vs " + last:>24} '
             f'{"boxes":>6}']
    for row in rows:
        lines.append(f'{row["model"]:22} {row["threads"]:7d} {row["case"]:5} {row["ms"]:8.2f} '
                     f'{row["vs_last"]:23.2f}x {row["boxes"]:6d}')
    return '\n'.join(lines)


def format_eager(rows: List[dict]) -> str:
    lines = [f'{"model":22} {"input":9} {"threads":>7} {"runtime":14} {"ms":>8} '
             f'{"eager / this":>12}']
    for row in rows:
        lines.append(f'{row["model"]:22} {row["size"]:9} {row["threads"]:7d} '
                     f'{row["runtime"]:14} {row["ms"]:8.2f} {row["speedup"]:11.2f}x')
    return '\n'.join(lines)


def format_profiles(profiles: Dict[str, Dict[str, float]], top: int = 12) -> str:
    lines = []
    for name, totals in profiles.items():
        total = sum(totals.values())
        products = sum(ms for op, ms in totals.items() if 'Conv' in op or 'Gemm' in op or
                       'MatMul' in op)
        lines.append(f'{name}: {total:.2f} ms of kernel time per run (sum of node medians); '
                     f'convolutions and matrix products {products:.2f} ms '
                     f'({100 * products / total:.0f}%), everything else {total - products:.2f} ms')
        lines += [f'  {op:28} {ms:7.2f} ms {100 * ms / total:5.1f}%'
                  for op, ms in list(totals.items())[:top]]
    return '\n'.join(lines)


def print_deploy_benchmark(threads: Sequence[int] = (2, 1), blocks: int = 10, calls: int = 10,
                           warmup: int = 3, profile: bool = True) -> Dict[str, list]:
    """Runs and prints :func:`compare_models`, :func:`compare_eager` and (``profile``)
    :func:`profile_models`, each model exported once; returns their rows."""
    with tempfile.TemporaryDirectory() as folder:
        exports = Exports(folder)
        print(f'onnxruntime, whole graph with NMS, batch 1, each model in its own process, '
              f'taking turns by rounds of {calls} calls ({warmup} warm-up calls each), '
              f'{blocks} rounds; median call:')
        for case, words in NMS_CASES.items():
            print(f'  case {case}: {words}')
        models = compare_models(exports, threads=threads, rounds=blocks, calls=calls,
                                warmup=warmup)
        print(format_models(models))
        print('\nonnxruntime against PyTorch eager (model.predict, deploy form), taking turns '
              'by blocks; SSDLite in case nms:')
        eager = compare_eager(exports, threads=threads, blocks=blocks,
                              calls=max(2, calls // 2), warmup=max(1, warmup - 1))
        print(format_eager(eager))
        result = dict(models=models, eager=eager)
        runtimes = available_runtimes()
        print(f'\nthe same files in each runtime ({", ".join(runtimes)}), case none, each '
              'in its own process, taking turns by rounds:')
        if 'openvino' not in runtimes:
            print('  (OpenVINO is not installed: `pip install emo-mm[openvino]`)')
        result['runtimes'] = compare_runtimes(exports, threads=threads, runtimes=runtimes,
                                              rounds=blocks, calls=calls, warmup=warmup)
        print(format_runtimes(result['runtimes'], runtimes))
        if profile:
            count = f'{threads[0]} thread' + ('s' if threads[0] != 1 else '')
            print(f'\nonnxruntime profile by operator type, {count}, case nms:')
            result['profiles'] = profile_models(exports, threads=threads[0])
            print(format_profiles(result['profiles']))
    return result


if __name__ == '__main__':  # one contender of time_in_processes, in a process of its own
    parser = argparse.ArgumentParser(description='Times one exported file in one runtime '
                                     '(called by time_in_processes); prints JSON.')
    parser.add_argument('--time-file', nargs=7, required=True,
                        metavar=('RUNTIME', 'FILE', 'THREADS', 'H', 'W', 'CALLS', 'WARMUP'))
    runtime, onnx_file, threads, height, width, calls, warmup = parser.parse_args().time_file
    print(json.dumps(time_file(runtime, onnx_file, int(threads), (int(height), int(width)),
                               int(calls), int(warmup))))
