"""Both backbones under ``torch.autocast('cpu', dtype=torch.bfloat16)``: the residual stream
keeps the authors' dtype with and without gradients, outputs stay near float32, gradients are
finite."""
from functools import partial
from typing import List, Tuple

import pytest
import torch
from conftest import matmul_depths
from torch import nn

from emo_mm import EMO
from emo_mm.models.backbones.efficientmod import EfficientMod
from emo_mm.testing import efficientmod_reference, emo_reference

BF16_EPS = 2.0**-8  # torch.finfo(torch.bfloat16).eps: 8 significant bits
NUM_STAGES = {EMO: 5, EfficientMod: 4}


def pair(backbone: type) -> Tuple[nn.Module, nn.Module]:
    """The authors' model (the literal reference) and ours with the same random weights, no
    stochastic depth (its random draws would differ between the runs compared)."""
    if backbone is EMO:
        reference = emo_reference.ReferenceEMO('1m')
        ours = EMO('1m', out_indices=range(5), drop_path_rate=0.)
        emo_reference.randomize(reference, 0)
    else:
        reference, ours = efficientmod_reference.ReferenceEfficientMod('xxs'), \
            EfficientMod('xxs')
        efficientmod_reference.randomize(reference, 0)
    ours.load_state_dict(reference.state_dict())
    return reference, ours


def image() -> torch.Tensor:
    return torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))


def bf16_dtypes(model: nn.Module, grad: bool) -> List[torch.dtype]:
    with torch.set_grad_enabled(grad), torch.autocast('cpu', dtype=torch.bfloat16):
        return [out.dtype for out in model(image())]


@pytest.mark.parametrize('backbone', (EMO, EfficientMod))
@pytest.mark.parametrize('training', (False, True), ids=('eval', 'train'))
def test_stream_dtype_is_the_authors_with_and_without_gradients(backbone, training):
    """EMO's stream is bfloat16 (convolutions all the way); EfficientMod's is float32 (its
    LayerNorms run in float32 under autocast and the authors add ``x + f(x)`` out of place)."""
    reference, ours = pair(backbone)
    reference.train(training)
    ours.train(training)
    authors = bf16_dtypes(reference, grad=True)
    assert bf16_dtypes(ours, grad=True) == authors
    assert bf16_dtypes(ours, grad=False) == authors
    expected = torch.bfloat16 if backbone is EMO else torch.float32
    assert authors == [expected] * NUM_STAGES[backbone]


@pytest.mark.parametrize('backbone, arch', ((EMO, '1m'), (EfficientMod, 'xxs')))
def test_bf16_training_step_near_fp32_with_finite_gradients(backbone, arch):
    """Forward + backward in training mode under bf16 autocast, against float32.

    Tolerance, per output: ``n * 2**-8`` relative to its largest value, where ``n`` is the
    number of convolutions / Linear layers on the way to it (``matmul_depths``: 5-59 for
    EMO-1M, 11-76 for EfficientMod-xxs) and ``2**-8`` the bfloat16 eps: autocast rounds the
    input and the weight of each such layer to bfloat16 (relative error <= 2**-9 each), and to
    first order these relative errors add up along the depth. Measured (``pytest -s``): at most
    0.042 (EMO-1M's last stage, tolerance 0.23) and 0.0084 (EfficientMod-xxs's first, tolerance
    0.043).
    """
    _, model = pair(backbone)
    model.train()
    x = image()
    expected = model(x)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        outs = model(x)
    sum(out.float().mean() for out in outs).backward()
    depths = matmul_depths(partial(backbone, arch), NUM_STAGES[backbone])
    for k, (out, ref, depth) in enumerate(zip(outs, expected, depths)):
        error = ((out.float() - ref).abs().max() / ref.abs().max()).item()
        print(f'{backbone.__name__} stage {k}: bf16 relative error {error:.4f} '
              f'(tolerance {depth * BF16_EPS:.3f})')
        assert error <= depth * BF16_EPS, (k, error, depth)
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)
