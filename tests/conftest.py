"""Helpers the test modules share: paths, running tools as a user would, numeric comparisons.

Tests write only to temporary directories (pytest's ``tmp_path`` / ``tmp_path_factory``); tools
run in such a directory so that the configs' relative ``data/...`` roots resolve there.
"""
import importlib.util
import os
import socket
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Dict, List, Optional, Sequence, Union

import torch

REPO = Path(__file__).resolve().parents[1]
TOOLS = REPO / 'tools'
CONFIGS = REPO / 'configs'
TESTS = REPO / 'tests'

# Float32 comparisons against the literal references. Both sides compute the same function with
# different (equally valid) operation orders and kernels, so they differ by accumulated rounding,
# which scales with the outputs' magnitude: errors are relative to the largest value of each
# output. 1e-5 is ~84 float32 ulps (eps = 2**-23 ~ 1.2e-7) of that value; the worst seen over the
# suite with 1 and 2 threads and oneDNN limited to AVX2 or SSE4.1 kernels is ~2e-6 (README,
# "Exactness"). The float64 tests prove the computation itself is the same (~1e-15 there).
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


def free_port() -> int:
    """A free TCP port on the loopback interface, for torch.distributed.run's rendezvous."""
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def run_tool(args: List[str], cwd: Path, env: Optional[Dict[str, str]] = None,
             expect_ok: bool = True, timeout: int = 900) -> str:
    """Runs a command as a user would (its own process, in ``cwd``); returns stdout + stderr
    and asserts the exit status (0, or non-zero when ``expect_ok`` is false)."""
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
    assert cfg.custom_imports == dict(imports=['emo_mm'], allow_failed_imports=False)
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
