"""Speed of the backbones against their plain reference implementations, in one run.

Each section times, for every (arch, input size, batch, mode) and interleaved so that a noisy
machine slows all models alike, a literal reference of the spec and emo_mm's model with the
reference's random weights:

* ``emo``: ``ref`` = ``emo_mm.testing.emo_reference`` (NCHW, per-window Python loops);
  ``emo`` = the EMO backbone in its default (trainable) form; ``deploy`` = the same after
  ``switch_to_deploy()`` (BatchNorms folded; inference only); ``base`` (with ``--baseline``)
  another implementation, e.g. a saved pre-optimisation copy.
* ``emov2``: ``ref`` = ``emo_mm.testing.emov2_reference`` (NCHW, per-window Python loops over
  both window partitions); ``emov2`` = the EMOv2 backbone in its default form; ``deploy`` = the
  same after ``switch_to_deploy()`` (BatchNorms and layer scales folded; inference only).
* ``efficientmod``: ``ref`` = ``emo_mm.testing.efficientmod_reference`` (NCHW copies for the
  convolutions, ``repeat`` for the context, explicit softmax attention); ``effmod`` = the
  EfficientMod backbone.

Reported per model: median latency over ``--reps`` steps (after ``--warmup`` steps), images/s,
peak memory allocated in one step, speed-up over ``ref``, max abs output difference to ``ref``
(and relative to the largest reference output), and multiply-accumulates per second (mmcv's
module-hook count, x3 for a training step) as a fraction of a large fp32 matmul measured on the
same machine. A step is ``model(x)`` under ``no_grad`` in eval mode (``infer``) or forward +
backward of the sum of the output means in train mode (``train``).

The tool only measures and reports. ``--check`` also compares with the acceptance targets
(CPU, 224x224: EMO-1M/5M and EMOv2-1M/5M inference >= 1.5x ``ref`` at batch 32 and >= 1.2x at
batch 1, training step >= 1.3x; every backbone's inference outputs within 1e-5 of ``ref``
relative to the output magnitude) and exits with status 1 when one is missed. On CUDA
``--check`` turns TF32 off for the whole run (its ~1e-3 rounding would miss 1e-5) and says
so; without it PyTorch's defaults stay and the TF32 state is printed.

The default is a quick run (several minutes on 2 cores): EMO 1m/5m, EMOv2 1m/5m and
EfficientMod xxs/s, batches 1 and 32, 224x224, both modes. ``--sections``, ``--emo-archs``,
``--emov2-archs`` and ``--efficientmod-archs`` pick what runs. A new section is one
``section_*`` function registered in :data:`SECTIONS` and its arch option in
:func:`parse_args`.

Example::

    python tools/benchmark.py --plot docs/benchmark.png --json work_dirs/benchmark.json
    python tools/benchmark.py --sections efficientmod --efficientmod-archs xxs --batches 1
    python tools/benchmark.py --deploy only   # exported models in onnxruntime (see --deploy)
"""
import argparse
import importlib
import itertools
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runs from a checkout, uninstalled

from emo_mm.models.backbones.efficientmod import EfficientMod  # noqa: E402
from emo_mm.models.backbones.emo import EMO  # noqa: E402
from emo_mm.models.backbones.emov2 import EMOv2  # noqa: E402
from emo_mm.testing import efficientmod_reference, emo_reference, emov2_reference  # noqa: E402
from emo_mm.testing.tf32 import tf32_state  # noqa: E402

Models = Dict[str, nn.Module]
# Acceptance targets, checked only with --check.
TARGETS = {('infer', 32): 1.5, ('infer', 1): 1.2, ('train', 32): 1.3, ('train', 1): 1.3}
TARGET_ARCHS, TARGET_SIZE = {'emo': ('1m', '5m'), 'emov2': ('1m', '5m')}, 224
# Inference outputs vs the reference, relative to the largest reference output. Train-mode EMO
# outputs are not held to it: PyTorch's CPU channels-last BatchNorm sums its batch statistics
# less accurately in fp32 (tests/test_fast_path.py checks that graph in float64 instead).
TARGET_REL_DIFF = 1e-5


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--sections', nargs='+', default=list(SECTIONS), choices=list(SECTIONS),
                        help='what to time (default: all)')
    parser.add_argument('--emo-archs', nargs='+', default=['1m', '5m'],
                        choices=sorted(EMO.arch_zoo))
    parser.add_argument('--window-size', type=int, default=7,
                        help='EMO and EMOv2 attention windows (ImageNet: 7)')
    parser.add_argument('--emov2-archs', nargs='+', default=['1m', '5m'],
                        choices=sorted(EMOv2.arch_zoo))
    parser.add_argument('--baseline', default=None, metavar='DIR:MODULE.CLASS',
                        help='also time another EMO implementation with the same constructor, '
                        'e.g. ../emo_base:emo_mm_base.models.backbones.emo.EMO, where '
                        '../emo_base/emo_mm_base is an older emo_mm package copied under '
                        'another name')
    parser.add_argument('--efficientmod-archs', nargs='+', default=['xxs', 's'],
                        choices=sorted(EfficientMod.arch_zoo))
    parser.add_argument('--batches', nargs='+', type=int, default=[1, 32])
    parser.add_argument('--sizes', nargs='+', type=int, default=[224])
    parser.add_argument('--modes', nargs='+', default=['infer', 'train'],
                        choices=['infer', 'train'])
    parser.add_argument('--devices', nargs='+', default=None,
                        help='default: cpu, and cuda when available')
    parser.add_argument('--threads', type=int, default=torch.get_num_threads(),
                        help='torch.set_num_threads for every model (default: %(default)s)')
    parser.add_argument('--reps', type=int, default=None,
                        help='timed steps per model (default 5; --deploy: per block, 10)')
    parser.add_argument('--warmup', type=int, default=None,
                        help='untimed steps per model (default 2; --deploy: per block, 3)')
    parser.add_argument('--no-ref', action='store_true',
                        help='skip the (slow) references; no ratios or differences then')
    parser.add_argument('--plot', default='benchmark.png', help='where to save the plot')
    parser.add_argument('--json', default=None, help='also save the rows as JSON')
    parser.add_argument('--check', action='store_true',
                        help='compare with the acceptance targets; exit 1 when one is missed')
    parser.add_argument('--deploy', nargs='?', const='also', choices=['also', 'only'],
                        help='also (or only) time whole exported models in onnxruntime, batch '
                        '1 (tools/deploy_benchmark.py): SSDLite-EMO-1M/2M/5M against mmdet\'s '
                        'SSDLite-MobileNetV2 at 320x320 (with and without boxes reaching '
                        'NMS), SSDLite-EMO-1M and DeepLabv3-EMO-1M (512x512) against PyTorch '
                        'eager, onnxruntime\'s profile by operator type, and SSDLite-EMO-1M, '
                        'DeepLabv3-EMO-1M and SSDLite-MobileNetV2 in onnxruntime and OpenVINO '
                        '(a column per runtime; OpenVINO: pip install emo-mm[openvino])')
    parser.add_argument('--deploy-threads', nargs='+', type=int, default=[2, 1],
                        help='thread counts of the --deploy comparisons (default: 2 1)')
    parser.add_argument('--deploy-blocks', type=int, default=10,
                        help='--deploy: rounds per exported file (a process each) and blocks '
                        'per model against PyTorch eager; each is --warmup untimed and --reps '
                        'timed calls (defaults for --deploy: 3 and 10)')
    parser.add_argument('--no-profile', action='store_true',
                        help='--deploy without the operator profile')
    return parser.parse_args()


# ------------------------------------------------------------------------------ steps
def make_step(model: nn.Module, x: torch.Tensor, mode: str) -> Callable[[], Sequence[torch.Tensor]]:
    """One inference or training step of ``model`` on ``x``; returns the stage outputs."""
    if mode == 'infer':
        model.eval()

        def step() -> Sequence[torch.Tensor]:
            with torch.no_grad():
                return model(x)
    else:
        model.train()

        def step() -> Sequence[torch.Tensor]:
            model.zero_grad(set_to_none=True)
            outs = model(x)
            sum(out.mean() for out in outs).backward()
            return [out.detach() for out in outs]

    return step


def sync(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def peak_memory_mib(step: Callable[[], object], device: torch.device) -> float:
    """Peak memory allocated during one step on top of what was live before it: the CUDA
    allocator's peak, or on CPU the running sum of the profiler's allocation records."""
    if device.type == 'cuda':
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        start = torch.cuda.memory_allocated(device)
        step()
        sync(device)
        return (torch.cuda.max_memory_allocated(device) - start) / 2**20
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU],
                                profile_memory=True) as prof:
        step()
    records = sorted((e for e in prof.profiler.kineto_results.events() if e.name() == '[memory]'),
                     key=lambda e: e.start_ns())
    return max(itertools.accumulate(e.nbytes() for e in records), default=0) / 2**20


def time_interleaved(steps: Dict[str, Callable[[], object]], device: torch.device, reps: int,
                     warmup: int) -> Dict[str, float]:
    """Median seconds per step of each model, the models taking turns within each repetition."""
    for step in steps.values():
        for _ in range(warmup):
            step()
    times: Dict[str, List[float]] = {name: [] for name in steps}
    for _ in range(reps):
        for name, step in steps.items():
            sync(device)
            start = time.perf_counter()
            step()
            sync(device)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(ts) for name, ts in times.items()}


def matmul_macs_per_s(device: torch.device, n: int = 2048, reps: int = 5) -> float:
    """Best fp32 ``n x n @ n x n`` rate on this device: the machine's practical MAC/s limit."""
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    a @ b
    best = float('inf')
    for _ in range(reps):
        sync(device)
        start = time.perf_counter()
        a @ b
        sync(device)
        best = min(best, time.perf_counter() - start)
    return n**3 / best


def hook_macs(model: nn.Module, size: int) -> float:
    """Multiply-accumulates per image as mmcv's module hooks count them (the EMO authors'
    counter; functional ops such as EfficientMod's attention products are not seen)."""
    from mmcv.cnn import get_model_complexity_info
    macs, _ = get_model_complexity_info(model, (3, size, size), print_per_layer_stat=False,
                                        as_strings=False)
    return macs


def differences(outs: Sequence[torch.Tensor], ref_outs: Sequence[torch.Tensor]) -> Tuple[float,
                                                                                          float]:
    """Max abs difference, and the largest one relative to its output's max magnitude."""
    diffs = [((a.float() - b.float()).abs().max().item(), b.float().abs().max().item() or 1.)
             for a, b in zip(outs, ref_outs)]
    return max(d for d, _ in diffs), max(d / m for d, m in diffs)


# ------------------------------------------------------------------------------ report
def compare(args: argparse.Namespace, device: torch.device, peak: float, backbone: str,
            arch: str, size: int, build: Callable[[str], Models], macs: float) -> List[dict]:
    """Times the models ``build(mode)`` returns (``ref`` first) on ``size x size`` inputs, for
    every batch and mode; ``macs`` per image."""
    rows = []
    for mode in args.modes:
        for batch in args.batches:
            models = {name: model.to(device) for name, model in build(mode).items()
                      if not (args.no_ref and name == 'ref')}
            x = torch.randn(batch, 3, size, size,
                            generator=torch.Generator().manual_seed(1)).to(device)
            steps = {name: make_step(model, x, mode) for name, model in models.items()}
            outs = {name: step() for name, step in steps.items()}
            memory = {name: peak_memory_mib(step, device) for name, step in steps.items()}
            seconds = time_interleaved(steps, device, args.reps, args.warmup)
            step_macs = macs * batch * (3 if mode == 'train' else 1)
            for name in steps:
                row = dict(device=device.type, backbone=backbone, arch=arch, size=size,
                           batch=batch, mode=mode, model=name, ms=seconds[name] * 1e3,
                           img_s=batch / seconds[name], peak_mib=memory[name],
                           gmac_s=step_macs / seconds[name] / 1e9,
                           of_matmul=step_macs / seconds[name] / peak)
                if 'ref' in steps:
                    row['speedup'] = seconds['ref'] / seconds[name]
                    row['max_diff'], row['rel_diff'] = differences(outs[name], outs['ref'])
                rows.append(row)
                print(format_row(row), flush=True)
    return rows


def section_emo(args: argparse.Namespace, device: torch.device, peak: float) -> List[dict]:
    """EMO: the reference, the default form, the deploy form (inference) and ``--baseline``."""
    baseline = load_baseline(args.baseline)
    rows = []
    for arch in args.emo_archs:

        def build(mode: str) -> Models:
            ref = emo_reference.ReferenceEMO(arch, args.window_size)
            emo_reference.randomize(ref, seed=0)

            def ours(cls: type) -> nn.Module:
                model = cls(arch, window_size=args.window_size, out_indices=range(5),
                            drop_path_rate=0.)
                model.load_state_dict(ref.state_dict())
                return model

            models = {'ref': ref, 'emo': ours(EMO)}
            if baseline is not None:
                models['base'] = ours(baseline)
            if mode == 'infer':
                models['deploy'] = ours(EMO).switch_to_deploy()
            return models

        for size in args.sizes:
            macs = hook_macs(EMO(arch, window_size=args.window_size, out_indices=range(5)), size)
            rows += compare(args, device, peak, 'emo', arch, size, build, macs)
    return rows


def section_emov2(args: argparse.Namespace, device: torch.device, peak: float) -> List[dict]:
    """EMOv2: the float64-checked reference, the default form and the deploy form (inference)."""
    rows = []
    for arch in args.emov2_archs:

        def build(mode: str) -> Models:
            ref = emov2_reference.ReferenceEMOv2(arch, args.window_size)
            emov2_reference.randomize(ref, seed=0)

            def ours() -> nn.Module:
                model = EMOv2(arch, window_size=args.window_size, out_indices=range(5),
                              drop_path_rate=0.)
                model.load_state_dict(ref.state_dict())
                return model

            models = {'ref': ref, 'emov2': ours()}
            if mode == 'infer':
                models['deploy'] = ours().switch_to_deploy()
            return models

        for size in args.sizes:
            macs = hook_macs(EMOv2(arch, window_size=args.window_size, out_indices=range(5)),
                             size)
            rows += compare(args, device, peak, 'emov2', arch, size, build, macs)
    return rows


def section_efficientmod(args: argparse.Namespace, device: torch.device,
                         peak: float) -> List[dict]:
    """EfficientMod: the literal reference and the backbone (drop path off, same weights)."""
    rows = []
    for arch in args.efficientmod_archs:

        def build(mode: str) -> Models:
            ref = efficientmod_reference.ReferenceEfficientMod(arch)
            efficientmod_reference.randomize(ref, seed=0)
            model = EfficientMod(arch, drop_path_rate=0., init_cfg=None)
            model.load_state_dict(ref.state_dict())
            return {'ref': ref, 'effmod': model}

        for size in args.sizes:
            macs = hook_macs(EfficientMod(arch, init_cfg=None), size)
            rows += compare(args, device, peak, 'efficientmod', arch, size, build, macs)
    return rows


# name -> function(args, device, matmul MAC/s) -> rows; --sections picks among them.
SECTIONS: Dict[str, Callable[[argparse.Namespace, torch.device, float], List[dict]]] = {
    'emo': section_emo,
    'emov2': section_emov2,
    'efficientmod': section_efficientmod,
}


def load_baseline(spec: Optional[str]) -> Optional[type]:
    if spec is None:
        return None
    path, _, dotted = spec.rpartition(':')
    if path:
        sys.path.insert(0, path)
    module, _, name = dotted.rpartition('.')
    return getattr(importlib.import_module(module), name)


HEADER = (f'{"device":6} {"backbone":12} {"arch":6} {"size":>4} {"batch":>5} {"mode":5} '
          f'{"model":7} {"ms":>9} {"img/s":>8} {"peak MiB":>8} {"vs ref":>7} {"max|diff|":>9} '
          f'{"rel diff":>8} {"GMAC/s":>7} {"%matmul":>7}')


def format_row(row: dict) -> str:
    ratio = f'{row["speedup"]:6.2f}x' if 'speedup' in row else f'{"-":>7}'
    diff = f'{row["max_diff"]:9.1e}' if 'max_diff' in row else f'{"-":>9}'
    rel = f'{row["rel_diff"]:8.1e}' if 'rel_diff' in row else f'{"-":>8}'
    return (f'{row["device"]:6} {row["backbone"]:12} {row["arch"]:6} {row["size"]:4d} '
            f'{row["batch"]:5d} {row["mode"]:5} {row["model"]:7} {row["ms"]:9.1f} '
            f'{row["img_s"]:8.1f} {row["peak_mib"]:8.0f} {ratio} {diff} {rel} '
            f'{row["gmac_s"]:7.1f} {100 * row["of_matmul"]:6.1f}%')


def check_targets(rows: List[dict]) -> List[str]:
    """The acceptance targets, as ratios to the reference; returns the misses."""
    misses = []
    for row in rows:
        if row['model'] == 'ref' or 'speedup' not in row:
            continue
        where = (f'{row["backbone"]} {row["model"]} {row["arch"]} {row["mode"]} batch '
                 f'{row["batch"]} {row["size"]}x{row["size"]}')
        if row['mode'] == 'infer' and row['rel_diff'] > TARGET_REL_DIFF:
            misses.append(f'{where}: relative difference {row["rel_diff"]:.1e} > '
                          f'{TARGET_REL_DIFF}')
        target = TARGETS.get((row['mode'], row['batch']))
        if row['device'] == 'cpu' and row['arch'] in TARGET_ARCHS.get(row['backbone'], ()) \
                and row['size'] == TARGET_SIZE and target and row['model'] != 'base' \
                and row['speedup'] < target:
            misses.append(f'{where}: {row["speedup"]:.2f}x < {target}x')
    return misses


def plot(rows: List[dict], path: str) -> None:
    """Images/s of every model, one bar group per (device, backbone, arch, size, batch, mode)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    def key(row: dict) -> Tuple:
        return (row['device'], row['backbone'], row['arch'], row['size'], row['batch'],
                row['mode'])

    keys = list(dict.fromkeys(key(row) for row in rows))
    models = list(dict.fromkeys(row['model'] for row in rows))
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(keys)), 3.6), dpi=90)
    width = 0.8 / len(models)
    for i, name in enumerate(models):
        speeds = {key(r): r['img_s'] for r in rows if r['model'] == name}
        ax.bar([k + i * width for k in range(len(keys))], [speeds.get(k, 0) for k in keys],
               width, label=name)
    ax.set_xticks([k + 0.4 - width / 2 for k in range(len(keys))])
    ax.set_xticklabels([f'{a} {s}\nb{b} {m}' + ('' if d == 'cpu' else f'\n{d}')
                        for d, _, a, s, b, m in keys], fontsize=7)
    ax.set_yscale('log')
    ax.set_ylabel('images / s (log)')
    backbones = ', '.join(dict.fromkeys(r['backbone'] for r in rows))
    ax.set_title(f'backbones ({backbones}), {torch.get_num_threads()} threads', fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def main() -> int:
    args = parse_args()
    backbone_reps, backbone_warmup = 5, 2
    if args.deploy:  # whole models in onnxruntime: against each other and PyTorch eager
        from deploy_benchmark import print_deploy_benchmark  # tools/deploy_benchmark.py
        print_deploy_benchmark(
            threads=args.deploy_threads, blocks=args.deploy_blocks,
            calls=10 if args.reps is None else args.reps,
            warmup=3 if args.warmup is None else args.warmup, profile=not args.no_profile)
        if args.deploy == 'only':
            return 0
    args.reps = backbone_reps if args.reps is None else args.reps
    args.warmup = backbone_warmup if args.warmup is None else args.warmup
    torch.set_num_threads(args.threads)
    devices = args.devices or (['cpu', 'cuda'] if torch.cuda.is_available() else ['cpu'])
    print(f'torch {torch.__version__}, {args.threads} threads, {os.cpu_count()} CPUs; '
          f'median of {args.reps} steps after {args.warmup} warm-up steps')
    if args.check and any(name.startswith('cuda') for name in devices):
        # --check compares float32 outputs at 1e-5: TF32 (cuDNN's default from Ampere on,
        # ~1e-3) would miss it. Timings then are full-float32 ones too.
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    if any(name.startswith('cuda') for name in devices):
        print(f'cuda: {tf32_state()}' + (' (--check turns TF32 off)' if args.check else ''))
    rows = []
    for name in devices:
        device = torch.device(name)
        peak = matmul_macs_per_s(device)
        print(f'{name}: fp32 matmul 2048^3 at {peak / 1e9:.1f} GMAC/s')
        print(HEADER)
        for section in args.sections:
            rows += SECTIONS[section](args, device, peak)
    plot(rows, args.plot)
    print(f'plot saved to {args.plot}')
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(rows, indent=1))
    if not args.check:
        return 0
    misses = check_targets(rows)
    for miss in misses:
        print(f'FAIL {miss}')
    print('targets: ' + ('FAIL' if misses else 'PASS (for the configurations run)'))
    return 1 if misses else 0


if __name__ == '__main__':
    sys.exit(main())
