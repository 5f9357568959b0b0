"""The backbones' ``memory_format`` argument: both layouts compute the same function, every
convolution sees the chosen layout, and ``None`` picks by the device."""
from typing import List

import pytest
import torch
from conftest import assert_close
from torch import nn

from emo_mm import EMO
from emo_mm.models.backbones.efficientmod import EfficientMod
from emo_mm.testing.emo_reference import randomize

FORMATS = ('channels_last', 'contiguous')
BACKBONES = {'EMO': lambda **kw: EMO('1m', out_indices=range(5), drop_path_rate=0., **kw),
             'EfficientMod': lambda **kw: EfficientMod('xxs', **kw)}


def pair(name: str):
    """The same random weights (and BatchNorm statistics) in both layouts."""
    channels_last = BACKBONES[name](memory_format='channels_last')
    contiguous = BACKBONES[name](memory_format='contiguous')
    randomize(channels_last, 0)
    contiguous.load_state_dict(channels_last.state_dict())
    return channels_last, contiguous


def image(dtype: torch.dtype) -> torch.Tensor:
    # 70x90: not a multiple of EMO's 7-pixel windows, so the padded attention path runs too.
    return torch.randn(2, 3, 70, 90, generator=torch.Generator().manual_seed(0)).to(dtype)


@pytest.mark.parametrize('name', BACKBONES)
@pytest.mark.parametrize('training', (False, True), ids=('eval', 'train'))
def test_both_formats_compute_the_same_function_in_float64(name, training):
    """Exact up to float64 rounding (worst seen 8e-15); the outputs and the input gradients."""
    models = [m.double().train(training) for m in pair(name)]
    outs, grads = [], []
    for model in models:
        x = image(torch.float64).requires_grad_()
        out = model(x)
        sum((o * torch.linspace(-1, 1, o.numel(), dtype=o.dtype).view_as(o)).sum()
            for o in out).backward()
        outs.append(out)
        grads.append(x.grad)
    assert_close(outs[1], outs[0], f'{name} contiguous vs channels-last, float64')
    assert_close(grads[1], grads[0], f'{name} input gradient, float64')


@pytest.mark.parametrize('name', BACKBONES)
def test_both_formats_agree_in_float32(name):
    """Eval mode within the suite's float32 tolerance (different kernels, different rounding;
    worst seen 1.1e-6). Train-mode BatchNorm differs more on CPU (PyTorch's channels-last
    BatchNorm sums in another order: docs/benchmark.md), so float64 proves that case."""
    channels_last, contiguous = (m.eval() for m in pair(name))
    with torch.no_grad():
        assert_close(contiguous(image(torch.float32)), channels_last(image(torch.float32)),
                     f'{name} contiguous vs channels-last, float32')


def layouts(tensor: torch.Tensor) -> List[str]:
    """The layouts whose dimension order ``tensor``'s strides follow (both for a tensor with one
    channel or a 1x1 map; strided views such as a crop count by their order, as PyTorch's
    convolutions pick their kernel)."""
    orders = {'channels_last': (0, 2, 3, 1), 'contiguous': (0, 1, 2, 3)}
    sized = [d for d in range(4) if tensor.shape[d] > 1]
    return [name for name, order in orders.items()
            if all(tensor.stride(a) >= tensor.stride(b)
                   for a, b in zip([d for d in order if d in sized],
                                   [d for d in order if d in sized][1:]))]


def conv_layouts(model: nn.Module) -> List[str]:
    """The layouts every Conv2d saw in one forward, input and weight, where only one fits."""
    seen = []

    def hook(module, inputs):
        for tensor in (inputs[0], module.weight):
            kinds = layouts(tensor)
            if len(kinds) == 1:
                seen.append(kinds[0])
            elif not kinds:
                seen.append(f'other {tuple(tensor.shape)} {tensor.stride()}')
    handles = [m.register_forward_pre_hook(hook) for m in model.modules()
               if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        model.eval()(image(torch.float32))
    for handle in handles:
        handle.remove()
    return seen


@pytest.mark.parametrize('name', BACKBONES)
@pytest.mark.parametrize('memory_format', FORMATS)
def test_every_convolution_sees_the_chosen_layout(name, memory_format):
    seen = conv_layouts(BACKBONES[name](memory_format=memory_format))
    assert seen and set(seen) == {memory_format}


def test_none_picks_by_the_device(monkeypatch):
    """Auto: channels-last without a GPU (measured faster on CPU), contiguous with one (not
    measured on a GPU yet)."""
    for name, build in BACKBONES.items():
        monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
        assert build().memory_format == 'channels_last', name
        monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
        assert build().memory_format == 'contiguous', name


@pytest.mark.parametrize('name', BACKBONES)
def test_unknown_format_is_refused(name):
    with pytest.raises(ValueError, match=r"memory_format must be one of \['channels_last', "
                                         r"'contiguous'\] or None .*got 'nhwc'"):
        BACKBONES[name](memory_format='nhwc')
