"""``torch.compile`` of both backbones: equal to eager at two input sizes (one with EMO's window
padding), and the number of compilations a keep-ratio pipeline (varying sizes) causes.

On CPU, Inductor compiles generated C++: it needs a C++ compiler (``g++``; ``apt-get install
g++``). Small variants of both backbones (every kind of block, fewer of them) keep the
compilations short; the code compiled is the same.
"""
import shutil
from typing import Callable, Tuple

import pytest
import torch
from conftest import FP32_RTOL, assert_close

from emo_mm import EMO
from emo_mm.models.backbones.efficientmod import EfficientMod

# Stages 3-4 hold attention blocks (window size 2 below), both backbones every block type.
SMALL_EMO = dict(depths=(1, 1, 2, 2), stem_dim=8, embed_dims=(8, 16, 32, 32),
                 exp_ratios=(2., 2., 2., 2.), dim_heads=(8, 8, 16, 16))
SMALL_EFFICIENTMOD = dict(embed_dims=(8, 16, 32, 32), depths=(1, 1, 1, 2),
                          attention_depths=(0, 0, 1, 1), mlp_ratios=(1, 2),
                          att_ratios=(2, 2, 2, 2))
BACKBONES = {
    'EMO': lambda: EMO(SMALL_EMO, window_size=2, out_indices=range(5), drop_path_rate=0.),
    'EfficientMod': lambda: EfficientMod(SMALL_EFFICIENTMOD),
}
# The keep-ratio test's EMO: one attention block (stage 4) instead of two stages of them. Tracing
# with symbolic sizes is what costs there: over six sizes (64x96, 70x90, 96x64, 84x112, 77x101,
# 64x64) Dynamo took ~215 CPU-seconds with SMALL_EMO, ~67 with this one (1 thread), with the same
# 5 compilations from the same guards (window_partition's now in stage 4); over the four sizes
# below, 3 compilations, ~13 seconds.
KEEP_RATIO_BACKBONES = {
    'EMO': lambda: EMO(dict(SMALL_EMO, depths=(1, 1, 1, 2)), window_size=2, out_indices=range(5),
                       drop_path_rate=0.),
    'EfficientMod': BACKBONES['EfficientMod'],
}
# Stage 3 (stride 16) of a 64x64 image is 4x4: whole 2x2 windows. Of 72x88 it is 5x6: the
# windows need padding.
SIZES = ((64, 64), (72, 88))
# Sizes a keep-ratio resize gives to images of several aspect ratios (small, so that the
# compilations stay short), in arrival order: a static graph for the first, a symbolic one at the
# second, and for EMO one more at 84x112 (the convolution guard below); the last reuses one.
KEEP_RATIO_SIZES = ((64, 96), (70, 90), (84, 112), (77, 101))
# Compilations over KEEP_RATIO_SIZES, measured on torch 2.13 (CPU): the first size's static
# graph, a symbolic one at the first change of size, and for EMO more for guards on the size:
# PyTorch's CPU convolution (its backend choice, torch._C._select_conv_backend, depends on the
# input's size: e.g. the stem's at 3*H*W = 20480); over more sizes also window_partition's
# reshape (a view or a copy, by the number of windows).
COMPILATIONS = {'EMO': 3, 'EfficientMod': 2}


def dynamo_available() -> Tuple[bool, str]:
    is_supported = getattr(torch._dynamo, 'is_dynamo_supported', None)
    if is_supported is not None and not is_supported():
        return False, 'torch.compile (Dynamo) does not support this Python/torch combination'
    return True, ''


needs_dynamo = pytest.mark.skipif(not dynamo_available()[0], reason=dynamo_available()[1])


def image(size: Tuple[int, int]) -> torch.Tensor:
    return torch.randn(1, 3, *size, generator=torch.Generator().manual_seed(0))


@pytest.mark.slow
@needs_dynamo
@pytest.mark.skipif(shutil.which('g++') is None and shutil.which('c++') is None,
                    reason='torch.compile (Inductor) on CPU compiles C++ and finds no C++ '
                           'compiler: apt-get install g++')
@pytest.mark.parametrize('name', BACKBONES)
def test_compiled_equals_eager_at_two_sizes(name):
    """Inductor's generated code against eager, eval mode, float32: within the suite's float32
    tolerance (fused kernels round in another order)."""
    torch._dynamo.reset()
    model = BACKBONES[name]().eval()
    compiled = torch.compile(model, dynamic=False)  # one static graph per size: shorter
    with torch.no_grad():
        for size in SIZES:
            assert_close(compiled(image(size)), model(image(size)),
                         f'{name} compiled vs eager at {size}', rtol=FP32_RTOL)


def count_compilations(build: Callable[[], torch.nn.Module]) -> int:
    """Dynamo compilations (graphs captured; Dynamo's default ``dynamic=None``: the first size
    static, sizes after a change symbolic) over :data:`KEEP_RATIO_SIZES`; the captured graphs,
    run eagerly, give the model's own outputs at every size."""
    from torch._dynamo.testing import CompileCounter
    torch._dynamo.reset()
    counter = CompileCounter()  # a backend that counts the graphs and runs them eagerly
    model = build().eval()
    compiled = torch.compile(model, backend=counter, dynamic=None)
    with torch.no_grad():
        for size in KEEP_RATIO_SIZES:
            assert_close(compiled(image(size)), model(image(size)), f'captured graph at {size}',
                         rtol=FP32_RTOL)
    return counter.frame_count


@pytest.mark.slow
@needs_dynamo
@pytest.mark.parametrize('name', BACKBONES)
def test_a_keep_ratio_pipeline_compiles_a_few_times(name):
    """Four sizes of a keep-ratio pipeline: 3 compilations for the small EMO (2-pixel
    windows), 2 for EfficientMod (:data:`COMPILATIONS`, measured on torch 2.13, CPU).
    EfficientMod: the first size's static graph, then one symbolic graph for every later size.
    EMO's window attention pads always while compiled, so whether a size needs padding is no
    guard; the guards read in ``TORCH_LOGS=recompiles`` came from PyTorch's CPU convolution
    backend choice, which depends on the input size (``3*H*W <= 20480`` at 84x112), and over
    more sizes from ``window_partition``'s reshape (whether it can be a view depends on the
    number of windows: six sizes gave 5) (measured by hand over these sizes with 7-pixel windows: EMO-1M 4 graphs before the
    always-pad change, the small variant 3 after). Dynamo stops compiling a function after
    ``torch._dynamo.config.cache_size_limit`` (8) graphs and runs it eagerly."""
    count = count_compilations(KEEP_RATIO_BACKBONES[name])
    print(f'{name}: {count} compilations over {len(KEEP_RATIO_SIZES)} sizes')
    assert count == COMPILATIONS[name]
