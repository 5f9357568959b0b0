"""Helpers the test modules share: paths, running tools as a user would, numeric comparisons,
and the models trained once per test session.

Tests write only to temporary directories (pytest's ``tmp_path`` / ``tmp_path_factory``); tools
run in such a directory so that the configs' relative ``data/...`` roots resolve there.

Markers: ``slow`` (trains, exports or runs tools in subprocesses; ``pytest -m "not slow"`` is
the quick edit-test loop). A test that uses a trained model (``learned_ssdlite``,
``learned_deeplabv3``) is marked ``slow`` here. Work that several tests share is done once
per run, also under pytest-xdist (:func:`once_per_run`).
"""
import dataclasses
import fcntl
import importlib.util
import json
import os
import pickle
import socket
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import pytest

# The suite tests CPU behaviour (gloo, SyncBN -> BN, the CPU figures): on a machine with GPUs it
# hides them, before torch is imported, from itself and every tool it starts. The GPU check
# (tools/gpu_check.sh) sets EMO_MM_GPU_CHECK=1 and sees them.
GPU_CHECK = os.environ.get('EMO_MM_GPU_CHECK') == '1'
if not GPU_CHECK:
    os.environ['CUDA_VISIBLE_DEVICES'] = ''
# The shell tools (tools/dist_train.sh ...) start $PYTHON: the interpreter running the tests.
os.environ['PYTHON'] = sys.executable

import torch  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
TOOLS = REPO / 'tools'
CONFIGS = REPO / 'configs'
TESTS = REPO / 'tests'

# Float32 comparisons against the literal references. Both sides compute the same function with
# different (equally valid) operation orders and kernels, so they differ by accumulated rounding,
# which scales with the outputs' magnitude: errors are relative to the largest value of each
# output. 1e-5 is ~84 float32 ulps (eps = 2**-23 ~ 1.2e-7) of that value; the worst seen over the
# suite with 1 and 2 threads and oneDNN limited to AVX2 or SSE4.1 kernels is 1.6e-6
# (docs/exactness.md). The float64 tests prove the computation itself is the same (worst seen 5e-15).
FP32_EPS = torch.finfo(torch.float32).eps
FP32_RTOL = 1e-5
FP64_RTOL = 1e-10

Tensors = Union[torch.Tensor, Sequence[torch.Tensor]]


def relative_error(actual: Tensors, expected: Tensors) -> float:
    """``max |actual - expected| / max |expected|``, the largest over paired tensors."""
    if isinstance(actual, torch.Tensor):
        actual, expected = [actual], [expected]
    assert len(actual) == len(expected), f'{len(actual)} outputs vs {len(expected)} expected'
    worst = 0.
    for a, e in zip(actual, expected):
        assert a.shape == e.shape, f'shape {tuple(a.shape)} vs expected {tuple(e.shape)}'
        scale = e.detach().abs().max().item() or 1.
        worst = max(worst, (a.detach() - e.detach()).abs().max().item() / scale)
    return worst


def assert_close(actual: Tensors, expected: Tensors, what: str = '',
                 rtol: Optional[float] = None) -> float:
    """Asserts :func:`relative_error` within ``rtol`` (default: by dtype, FP32_RTOL or
    FP64_RTOL), prints it (``pytest -s``) and returns it."""
    first = actual if isinstance(actual, torch.Tensor) else actual[0]
    if rtol is None:
        rtol = FP64_RTOL if first.dtype == torch.float64 else FP32_RTOL
    error = relative_error(actual, expected)
    print(f'{what}: max |actual - expected| / max |expected| = {error:.2e} (tolerance {rtol:.0e})')
    assert error <= rtol, f'{what}: relative error {error:.3e} > {rtol:.0e}'
    return error


def matmul_depths(build: Callable[[Tuple[int, ...]], torch.nn.Module],
                  num_stages: int) -> List[int]:
    """For each stage output of a backbone: the number of convolutions and Linear layers on
    the way to it, counted in ``build(out_indices=(k, ))`` (which builds the stages up to k
    only); each one rounds its input and weight under autocast (tests/test_mixed_precision.py
    derives the AMP tolerances from it)."""
    return [sum(isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))
                for m in build(out_indices=(k, )).modules()) for k in range(num_stages)]


def free_port() -> int:
    """A free TCP port on the loopback interface, for torch.distributed.run's rendezvous."""
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def _process_main(rank: int, world_size: int, port: int, source: str, name: str,
                  args: tuple) -> None:
    import torch.distributed as torch_dist
    # Test modules are imported by path (pytest.ini), so the function is found the same way.
    spec = importlib.util.spec_from_file_location(f'emo_mm_process_{Path(source).stem}', source)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    torch_dist.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{port}', rank=rank,
                                  world_size=world_size)
    try:
        getattr(module, name)(rank, world_size, *args)
    finally:
        torch_dist.destroy_process_group()


def run_in_processes(fn: Callable, world_size: int, *args) -> None:
    """``fn(rank, world_size, *args)`` in ``world_size`` new processes joined in a gloo group
    on the loopback interface (``fn`` at a test module's top level, results written to files);
    an exception in any process fails the caller."""
    import inspect

    import torch.multiprocessing as mp
    mp.spawn(_process_main, nprocs=world_size,
             args=(world_size, free_port(), inspect.getfile(fn), fn.__name__, args))


def run_tool(args: List[str], cwd: Path, env: Optional[Dict[str, str]] = None,
             expect_ok: bool = True, timeout: int = 900) -> str:
    """Runs a command as a user would (its own process, in ``cwd``); returns stdout + stderr
    and asserts the exit status (0, or non-zero when ``expect_ok`` is false). It sees the GPUs
    only in the GPU check (``CUDA_VISIBLE_DEVICES`` above)."""
    proc = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})
    output = proc.stdout + proc.stderr
    if expect_ok:
        assert proc.returncode == 0, f'{args} failed:\n{output[-6000:]}'
    else:
        assert proc.returncode != 0, f'{args} should have failed:\n{output[-3000:]}'
    return output


def python_tool(name: str, *args: Union[str, Path]) -> List[str]:
    """``[python, tools/<name>, *args]``."""
    return [sys.executable, str(TOOLS / name), *map(str, args)]


def load_tool(name: str) -> ModuleType:
    """Imports ``tools/<name>.py`` as a module (tools are scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(f'emo_mm_tools_{name}', TOOLS / f'{name}.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build_detector(cfg) -> torch.nn.Module:
    """The detector of an mmdet config without its ImageNet checkpoint (no download, no init)."""
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    register_all_modules(init_default_scope=True)  # as init_detector does
    cfg.model.backbone.init_cfg = None
    return MODELS.build(cfg.model)


def build_segmentor(cfg) -> torch.nn.Module:
    """The segmentor of an mmseg config without its ImageNet checkpoint (no download, no init)."""
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS
    init_default_scope('mmseg')
    cfg.model.backbone.init_cfg = None
    return MODELS.build(cfg.model)


EMO_CKPT_URL = 'https://github.com/zhangzjn/EMO/raw/main/resources/EMO_{}/net.pth'


def check_variant_backbone(cfg, name: str, config_file: Path,
                           emo_variants: Dict[str, tuple]) -> None:
    """The backbone of a Mask R-CNN / Semantic FPN variant config (``emo_1m`` ...
    ``efficientmod_s_conv``): EMO variants ``(arch, window, drop path)`` load the authors' URL;
    EfficientMod ones a documented local file (their weights are on a drive pip cannot reach)."""
    assert cfg.custom_imports == dict(imports=['emo_mm', 'emo_mm.datasets.checked_loader'],
                                      allow_failed_imports=False)
    backbone = cfg.model.backbone
    if name in emo_variants:
        arch, window, drop_path = emo_variants[name]
        assert (backbone.type, backbone.arch, backbone.window_size, backbone.drop_path_rate) == (
            'EMO', arch, window, drop_path)
        assert backbone.out_indices == (1, 2, 3, 4)
        assert backbone.init_cfg == dict(type='Pretrained',
                                         checkpoint=EMO_CKPT_URL.format(arch.upper()))
    else:
        assert (backbone.type, backbone.arch, backbone.drop_path_rate) == (
            'EfficientMod', name[len('efficientmod_'):], 0.02)
        assert backbone.out_indices == (0, 1, 2, 3)
        assert backbone.init_cfg == dict(type='Pretrained', checkpoint=f'checkpoints/{name}.pth')
        text = config_file.read_text()
        assert 'https://drive.google.com/drive/folders/' in text
        assert '--cfg-options model.backbone.init_cfg.checkpoint=' in text


# ------------------------------------------------------------------- comparing detections
def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``(n, 4) x (m, 4) -> (n, m)`` IoU of corner boxes."""
    lt = torch.maximum(a[:, None, :2], b[None, :, :2])
    rb = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    area = lambda x: (x[:, 2:] - x[:, :2]).prod(-1)  # noqa: E731
    return inter / (area(a)[:, None] + area(b)[None, :] - inter).clamp(min=1e-9)


def matches(found, expected, top: int, score_atol: float = 1e-3) -> Dict[int, int]:
    """For each of the ``top`` best of ``expected`` (``InstanceData`` or anything with
    ``bboxes``, ``scores``, ``labels``), the index in ``found`` of its best-overlapping box of
    the same label, IoU > 0.95 and a score within ``score_atol`` (-1 if none)."""
    order = expected.scores.argsort(descending=True)[:top]
    if len(found.scores) == 0:
        return {int(i): -1 for i in order}
    iou = box_iou(expected.bboxes[order].float(), found.bboxes.float())
    same = (expected.labels[order, None] == found.labels[None, :]) & (iou > 0.95) & \
        ((expected.scores[order, None] - found.scores[None, :]).abs() <= score_atol)
    best = torch.where(same, iou, torch.full_like(iou, -1.)).argmax(1)
    return {int(i): int(j) if ok else -1 for i, j, ok in zip(order, best, same.any(1))}


def unmatched(found, expected, top: int, score_atol: float = 1e-3) -> List[int]:
    """Indices among the ``top`` best of ``expected`` without a box in ``found`` of the same
    label, IoU > 0.95 and a score within ``score_atol`` (see :func:`matches`)."""
    return [i for i, j in matches(found, expected, top, score_atol).items() if j < 0]


def load_predictions(path: Path) -> Dict[str, dict]:
    """A test tool's ``--out`` file as ``{image path: pred_instances}`` (tensors)."""
    with open(path, 'rb') as f:
        return {p['img_path']: p['pred_instances'] for p in pickle.load(f)}


class Boxes:
    """``bboxes``, ``scores``, ``labels`` of one image's predictions, for ``unmatched``."""

    def __init__(self, instances: dict, min_score: float = 0.) -> None:
        keep = instances['scores'] >= min_score
        self.bboxes, self.scores, self.labels = (
            instances[k][keep] for k in ('bboxes', 'scores', 'labels'))


def assert_same_predictions(found: Dict[str, dict], expected: Dict[str, dict]) -> None:
    """Every box scoring >= 0.05 in one file has a twin (label, IoU > 0.95, score within 1e-4)
    in the other, both ways. The two runs may use other thread counts, hence other float
    rounding: boxes near the score threshold (0.02) may come and go, so they are not paired."""
    assert found.keys() == expected.keys() and len(expected) > 0
    compared = 0
    for image, instances in expected.items():
        for a, b in ((instances, found[image]), (found[image], instances)):
            strong = Boxes(a, min_score=0.05)
            missing = unmatched(Boxes(b), strong, top=len(strong.scores), score_atol=1e-4)
            assert not missing, f'{image}: {len(missing)} of {len(strong.scores)} unmatched'
            compared += len(strong.scores)
    assert compared > 0, 'no detections scored >= 0.05: nothing was compared'


# --------------------------------------------------------------- models trained once per run
# The demo's two models, trained exactly as `tools/demo.py` trains them (its tiny configs,
# `tools/dist_train.sh` with 2 CPU processes), once per test run, shared by every test that
# needs *a* trained model: the learning floors, the tools on a learned checkpoint, DDP replica
# checks, the inference APIs, deploy parity. Each rank also saves its weights
# (tests/rank_weights_hook.py), which changes nothing in the training. Under pytest-xdist the
# workers share them too (:func:`once_per_run`).
LEARNED = ('learned_ssdlite', 'learned_deeplabv3')


def pytest_report_header(config) -> str:
    if GPU_CHECK:
        return f'emo-mm GPU check: {torch.cuda.device_count()} GPU(s) visible'
    return ('emo-mm tests run on CPU on purpose (CUDA_VISIBLE_DEVICES= for the suite and its '
            'tools); the GPU check is tools/gpu_check.sh')


@pytest.fixture(autouse=True, scope='session')
def full_float32_on_cuda():
    """Every test runs with TF32 off (emo_mm.testing.tf32): on CUDA GPUs from Ampere on,
    cuDNN's default TF32 convolutions would break the float32 tolerances (FP32_RTOL). No effect
    on CPU."""
    from emo_mm.testing.tf32 import tf32_disabled
    with tf32_disabled():
        yield


def pytest_configure(config) -> None:
    """Under pytest-xdist the workers share the cores: each worker's torch, and the tools it
    starts, get cores / workers threads (the numerical tests run with 1 and 2 threads in CI)."""
    workers = int(os.environ.get('PYTEST_XDIST_WORKER_COUNT', '1'))
    if workers > 1:
        threads = str(max(1, (os.cpu_count() or 1) // workers))
        os.environ['OMP_NUM_THREADS'] = os.environ['MKL_NUM_THREADS'] = threads
        torch.set_num_threads(int(threads))


# The order in which the modules run. Under pytest-xdist (the Makefile's `-n 2 --dist loadscope
# --no-loadscope-reorder`) each module goes whole to the next free worker in this order: first
# the two that start the demo's two trainings, one on each worker (the two side by side took
# 345 s on the 2-core machine, one after the other 390-490 s), then the longest modules, and the
# short numerical ones last, to keep both workers busy to the end (xdist's own order, most tests
# first, runs the numerical modules first and leaves the long ones for the end). A module not
# listed runs before the numerical ones.
MODULE_ORDER = ('test_learning', 'test_segmentation', 'test_deploy', 'test_detection',
                'test_deploy_two_stage', 'test_slurm', 'test_resume', 'test_sem_fpn',
                'test_mask_rcnn', 'test_inputs', 'test_deploy_graphs', 'test_deploy_doors',
                'test_deploy_openvino', 'test_tools', 'test_distributed_state',
                'test_emov2_learning', 'test_emov2_detection', 'test_compile',
                'test_unused_stages', 'test_gpu',
                None,  # modules not listed
                'test_readme', 'test_checkpoint', 'test_flops', 'test_emov2_configs',
                'test_registration',
                'test_fast_path', 'test_efficientmod', 'test_emov2', 'test_backbone',
                'test_mixed_precision', 'test_memory_format')


def _module_rank(item) -> int:
    name = item.path.stem
    return MODULE_ORDER.index(name if name in MODULE_ORDER else None)


def pytest_collection_modifyitems(config, items) -> None:
    items.sort(key=_module_rank)  # stable: each module's own order is kept
    for item in items:
        if set(LEARNED) & set(getattr(item, 'fixturenames', ())):
            item.add_marker(pytest.mark.slow)


def run_root(tmp_path_factory) -> Path:
    """The test run's base temporary directory, the same for every pytest-xdist worker."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get('PYTEST_XDIST_WORKER') else base


def once_per_run(tmp_path_factory, name: str, make: Callable[[Path], dict]) -> dict:
    """``make(folder)`` once per test run, whatever the number of pytest-xdist workers: the
    first caller runs it in ``<run root>/<name>`` while the others wait, and every caller gets
    its (JSON) result. A failure is handed to every caller too, not run again."""
    root = run_root(tmp_path_factory)
    result = root / f'{name}.json'
    with open(root / f'{name}.lock', 'w') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file is closed
        if not result.exists():
            folder = root / name
            folder.mkdir(exist_ok=True)
            try:
                outcome = dict(value=make(folder))
            except BaseException as error:  # noqa: B902  (handed on to every caller)
                outcome = dict(error=f'{name} failed: {type(error).__name__}: {error}')
            result.write_text(json.dumps(outcome))
    outcome = json.loads(result.read_text())
    if 'error' in outcome:
        raise RuntimeError(outcome['error'])
    return outcome['value']


@pytest.fixture(scope='session')
def demo_data(tmp_path_factory) -> Path:
    """A directory holding the demo's tiny datasets, ``data/tiny_coco`` and ``data/tiny_ade``
    (as ``tools/make_tiny_datasets.py`` writes them); tools run in it."""
    def make(folder: Path) -> dict:
        from emo_mm.datasets.tiny_ade import make_tiny_ade
        from emo_mm.datasets.tiny_coco import make_tiny_coco
        make_tiny_coco(folder / 'data' / 'tiny_coco')
        make_tiny_ade(folder / 'data' / 'tiny_ade')
        return {}
    once_per_run(tmp_path_factory, 'demo', make)
    return run_root(tmp_path_factory) / 'demo'


def with_rank_weights(config: Path, out: Path) -> Path:
    """A config file ``out`` that is ``config`` plus :class:`SaveRankWeightsHook` (each rank
    saves ``start/end/state_rank{r}.pth`` in the work dir); run it with ``tests/`` on
    ``PYTHONPATH``."""
    from mmengine.config import Config
    cfg = Config.fromfile(str(config))
    imports = [*cfg.custom_imports['imports'], 'rank_weights_hook']
    hooks = [dict(hook) for hook in cfg.get('custom_hooks', [])]
    hooks.append(dict(type='SaveRankWeightsHook'))
    out.write_text(f'_base_ = {str(config)!r}\n'
                   f'custom_imports = dict(imports={imports!r}, allow_failed_imports=False)\n'
                   f'custom_hooks = {hooks!r}\n')
    return out


def helpers_on_pythonpath() -> Dict[str, str]:
    """The environment entry that lets a tool import the test helpers (custom_imports)."""
    return {'PYTHONPATH': os.pathsep.join(filter(None, [str(TESTS),
                                                        os.environ.get('PYTHONPATH')]))}


def learn(tmp_path_factory, name: str, run_dir: Path):
    """``tools/demo.py``'s training of task ``name`` in ``run_dir``, once per run; its
    ``Outcome`` (``task`` as the demo's, ``work_dir``, ``checkpoint`` of the final weights,
    ``val_history``; the tool's console output in ``work_dir / 'train.log'``)."""
    demo = load_tool('demo')
    task = next(t for t in demo.TASKS if t.name == name)

    def make(folder: Path) -> dict:
        config = with_rank_weights(REPO / task.config, folder / 'config.py')
        outcome = demo.train(dataclasses.replace(task, config=str(config)), run_dir, nproc=2,
                             port=free_port(), env=helpers_on_pythonpath())
        return dict(work_dir=str(outcome.work_dir), train_seconds=outcome.train_seconds)

    made = once_per_run(tmp_path_factory, name, make)
    return demo.trained_outcome(task, Path(made['work_dir']), made['train_seconds'])


@pytest.fixture(scope='session')
def learned_ssdlite(tmp_path_factory, demo_data):
    """SSDLite-EMO-1M after the demo's schedule (held-out mAP ~0.8); see :func:`learn`."""
    return learn(tmp_path_factory, 'ssdlite_emo_1m', demo_data)


@pytest.fixture(scope='session')
def learned_deeplabv3(tmp_path_factory, demo_data):
    """DeepLabv3-EMO-1M after the demo's schedule (held-out mIoU ~84); see :func:`learn`."""
    return learn(tmp_path_factory, 'deeplabv3_emo_1m', demo_data)


@dataclasses.dataclass
class ToolRun:
    """A ``tools/test.py`` run: its work dir, console output and ``--out`` predictions (a
    ``.pkl`` file for detection, a folder of label maps for segmentation)."""
    work_dir: Path
    output: str
    predictions: Path


def run_test_tool(tmp_path_factory, outcome, cwd: Path, *options: str) -> ToolRun:
    """Our ``tools/test.py`` (one process) on the checkpoint of a learned ``outcome``, with
    ``--out`` and ``options``, once per run."""
    def make(folder: Path) -> dict:
        predictions = folder / ('preds.pkl' if outcome.task.framework == 'mmdet' else 'preds')
        output = run_tool(python_tool('test.py', REPO / outcome.task.config, outcome.checkpoint,
                                      '--work-dir', folder, '--out', predictions, *options),
                          cwd=cwd)
        return dict(work_dir=str(folder), output=output, predictions=str(predictions))

    made = once_per_run(tmp_path_factory, f'{outcome.task.name}_tested', make)
    return ToolRun(Path(made['work_dir']), made['output'], Path(made['predictions']))


@pytest.fixture(scope='session')
def learned_ssdlite_tested(tmp_path_factory, learned_ssdlite, demo_data) -> ToolRun:
    """``tools/test.py`` on the learned SSDLite (24 held-out images), pictures of its
    predictions in ``<work dir>/<timestamp>/pictures``."""
    return run_test_tool(tmp_path_factory, learned_ssdlite, demo_data, '--show-dir', 'pictures')


@pytest.fixture(scope='session')
def learned_deeplabv3_tested(tmp_path_factory, learned_deeplabv3, demo_data) -> ToolRun:
    """``tools/test.py`` on the learned DeepLabv3 (8 held-out images)."""
    return run_test_tool(tmp_path_factory, learned_deeplabv3, demo_data)


# =============================================================================================
# Issue 19: tiny Mask R-CNNs trained once per run (EMO-1M and a small EfficientMod), for the
# two-stage ONNX tests (tests/test_deploy_two_stage.py) and the Mask R-CNN tool tests
# (tests/test_mask_rcnn.py); helpers of the two-stage parity tests.
# =============================================================================================
# The cheapest training measured to learn the tiny shapes (bbox and segm mAP well above 0; see
# the fixtures): 128x128 inputs (a quarter of the tiny configs' 256x256 pixels), 16 training
# images, batches of 4 after a 5-iteration warm-up, one evaluation at the end, data loaded in
# the main process (workers cost more than they save on tiny sets).
MASK_RCNN_DATA = [
    *[f'{loader}.{key}' for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader')
      for key in ('num_workers=0', 'persistent_workers=False')],
    *[f'{loader}.dataset.pipeline.2.scale=(128,128)'
      for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader')]]
MASK_RCNN_TRAIN_IMAGES, MASK_RCNN_VAL_IMAGES = 16, 8


def mask_rcnn_schedule(epochs: int, lr: float) -> List[str]:
    """``--cfg-options`` of ``epochs`` epochs of 4 iterations, one evaluation at the end."""
    return ['train_dataloader.batch_size=4', f'train_cfg.max_epochs={epochs}',
            f'train_cfg.val_interval={epochs}', f'default_hooks.checkpoint.interval={epochs}',
            'default_hooks.logger.interval=4', f'optim_wrapper.optimizer.lr={lr}',
            'param_scheduler.0.end=5', f'param_scheduler.1.milestones=[{epochs}]',
            f'param_scheduler.1.end={epochs}']


@dataclasses.dataclass
class TrainedDetector:
    """A tiny detector trained by ``tools/train.py`` in ``cwd``, which holds
    ``data/tiny_coco``: run tools there (with ``data_options``), writing elsewhere."""
    cwd: Path
    config: Path
    checkpoint: Path  # the final weights
    data_options: List[str]  # --cfg-options of the data (size, loaders) it was trained with
    log: str  # the tool's console output; its last evaluation is of the final weights


def train_tiny_mask_rcnn(tmp_path_factory, config: Path, epochs: int,
                         lr: float) -> TrainedDetector:
    """``config`` (a tiny Mask R-CNN) trained for ``epochs`` epochs at ``lr`` on a fresh tiny
    COCO, the final weights evaluated on the held-out images; once per run."""
    def make(folder: Path) -> dict:
        from emo_mm.datasets.tiny_coco import make_tiny_coco
        make_tiny_coco(folder / 'data' / 'tiny_coco', num_train=MASK_RCNN_TRAIN_IMAGES,
                       num_val=MASK_RCNN_VAL_IMAGES, image_size=128)
        log = run_tool(python_tool('train.py', config, '--work-dir', 'train', '--cfg-options',
                                   *MASK_RCNN_DATA, *mask_rcnn_schedule(epochs, lr)), cwd=folder)
        checkpoint = folder / 'train' / f'epoch_{epochs}.pth'
        assert checkpoint.is_file(), log[-3000:]
        return dict(checkpoint=str(checkpoint), log=log)

    made = once_per_run(tmp_path_factory, f'mask_rcnn_{config.stem}', make)
    checkpoint = Path(made['checkpoint'])
    return TrainedDetector(checkpoint.parents[1], config, checkpoint, MASK_RCNN_DATA,
                           made['log'])


@pytest.fixture(scope='session')
def learned_mask_rcnn_emo(tmp_path_factory) -> TrainedDetector:
    """Mask R-CNN-EMO-1M (configs/mask_rcnn/emo_1m_tiny.py), 64 iterations at lr 2e-3.
    Measured (held-out bbox / segm mAP, four runs, 1 or 2 threads): 0.22-0.42 / 0.36-0.63;
    ~0 until ~30 iterations; after 48 iterations at 1e-3 0.05-0.25 / 0.18-0.28, after 24 at
    3e-3 0.00 (too few to rely on)."""
    return train_tiny_mask_rcnn(tmp_path_factory, CONFIGS / 'mask_rcnn' / 'emo_1m_tiny.py',
                                epochs=16, lr=2e-3)


@pytest.fixture(scope='session')
def learned_mask_rcnn_efficientmod(tmp_path_factory) -> TrainedDetector:
    """Mask R-CNN with a small EfficientMod (configs/mask_rcnn/efficientmod_tiny.py), 24
    iterations at lr 1e-3: it learns faster than EMO-1M from scratch. Measured (held-out bbox
    / segm mAP, two runs): 0.27-0.28 / 0.39-0.40; 0.20 / 0.35 after 16 iterations."""
    return train_tiny_mask_rcnn(tmp_path_factory,
                                CONFIGS / 'mask_rcnn' / 'efficientmod_tiny.py', epochs=6, lr=1e-3)


PHOTOS = sorted((REPO / 'demo').glob('*.jpg'))
# Odd sizes: not multiples of EMO's windows (7) nor of the strides (32).
ODD_CROPS = [(301, 457), (333, 250)]


def odd_photos(tmp_path: Path) -> List[Path]:
    """The demo photos cropped to odd sizes, saved as files (the APIs' usual input)."""
    import mmcv
    paths = []
    for photo, (h, w) in zip(PHOTOS, ODD_CROPS * 2):
        path = tmp_path / f'{photo.stem}_{h}x{w}.png'  # lossless: both runs read one image
        mmcv.imwrite(mmcv.imread(str(photo))[:h, :w], str(path))
        paths.append(path)
    return paths
