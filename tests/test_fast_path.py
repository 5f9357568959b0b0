"""The fast path (channels-last, window views, in-place adds) and the deploy form stay exact.

Every comparison is against ``emo_mm.testing.emo_reference`` on random weights and random norm
statistics; the relative difference is printed (``pytest -s``): float64 proves the same
function, float32 bounds the rounding relative to the outputs' magnitude (tests/conftest.py).
No timing is asserted here: ``tools/benchmark.py`` measures the speed.
"""
import copy

import pytest
import torch
from conftest import FP32_RTOL, assert_close
from mmcv.cnn import get_model_complexity_info

from emo_mm import EMO
from emo_mm.models.layers import window_partition, window_reverse
from emo_mm.testing.emo_reference import ReferenceEMO, randomize

ARCHS = ('1m', '2m', '5m', '6m')


def pair(arch: str, window_size: int, seed: int, deploy: bool,
         **kwargs) -> tuple:
    """The reference and our model with its weights, both in eval mode (ours deployed if asked)."""
    reference = ReferenceEMO(arch, window_size).eval()
    randomize(reference, seed=seed)
    model = EMO(arch, window_size=window_size, out_indices=range(5), **kwargs)
    model.load_state_dict(reference.state_dict())
    model.eval()
    if deploy:
        model.switch_to_deploy()
    return reference, model


def max_diff(outs, expected) -> float:
    return max((a - e).abs().max().item() for a, e in zip(outs, expected))


@pytest.mark.parametrize('dtype', (torch.float32, torch.float64), ids=('fp32', 'fp64'))
@pytest.mark.parametrize('arch', ARCHS)
def test_every_arch_matches_the_reference_deployed(arch, dtype):
    """The deploy form of every arch at 224x224 (stage 3: 2x2 windows of 7). The default form
    of every arch, in both precisions, is compared in test_backbone.py."""
    reference, model = pair(arch, 7, seed=3, deploy=False)
    reference, model = reference.to(dtype), model.to(dtype)
    model.switch_to_deploy()  # folded in the checkpoint's precision: the float64 run is exact
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0), dtype=dtype)
    with torch.no_grad():
        assert_close(model(x), reference(x), f'{arch} deploy 224x224 {dtype}')


# Each window size (7, 10, 16, 0 = whole map) against a stage-3/4 map larger than it and not a
# multiple (97x131), smaller (64x48), and 1x1 at stage 4 (20x20); once in each form.
WINDOW_CASES = (
    (False, 7, (97, 131)), (False, 10, (64, 48)), (False, 16, (20, 20)), (False, 0, (97, 131)),
    (True, 7, (20, 20)), (True, 10, (97, 131)), (True, 16, (64, 48)), (True, 0, (64, 48)))


@pytest.mark.parametrize('deploy,window_size,size', WINDOW_CASES)
def test_odd_sizes_and_windows_match_the_reference(size, window_size, deploy):
    arch = '2m' if window_size in (7, 0) else '6m'
    reference, model = pair(arch, window_size, seed=sum(size), deploy=deploy)
    x = torch.randn(2, 3, *size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert_close(model(x), reference(x),
                     f'{arch} {"deploy" if deploy else "default"} window {window_size} {size}')


def test_window_partition_is_the_strided_grouping_and_reverts():
    """Window (a, b) holds rows r * n1 + a and columns c * n2 + b, as in the spec."""
    n1, n2, win = 3, 2, (4, 5)
    x = torch.randn(2, 6, win[0] * n1, win[1] * n2)
    tokens = window_partition(x, win).permute(0, 2, 3, 1).reshape(2, n1, n2, *win, 6)
    for a in range(n1):
        for b in range(n2):
            rows, cols = torch.arange(win[0]) * n1 + a, torch.arange(win[1]) * n2 + b
            expected = x[:, :, rows][:, :, :, cols].permute(0, 2, 3, 1)
            assert torch.equal(tokens[:, a, b], expected)
    assert torch.equal(window_reverse(window_partition(x, win), win), x)


@pytest.mark.parametrize('window_size,size', ((7, (64, 64)), (10, (97, 131))))
def test_training_step_matches_the_reference(window_size, size):
    """Train mode (BatchNorm on batch statistics), forward and every parameter gradient.

    In float64, so that the graphs must agree to rounding: in float32, PyTorch's CPU kernel for
    channels-last BatchNorm statistics accumulates less accurately than the NCHW one (~1e-4 on
    maps with a large mean), which is the kernel's precision, not a different computation.
    """
    reference = ReferenceEMO('1m', window_size).double().train()
    randomize(reference, seed=5)
    model = EMO('1m', window_size=window_size, out_indices=range(5), drop_path_rate=0.)
    model.double().train()
    model.load_state_dict(reference.state_dict())
    x = torch.randn(3, 3, *size, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    outs, expected = model(x), reference(x)
    sum(o.square().mean() for o in outs).backward()
    sum(o.square().mean() for o in expected).backward()
    ref_params = dict(reference.named_parameters())
    grad_diff = max((p.grad - ref_params[n].grad).abs().max().item()
                    for n, p in model.named_parameters())
    scale = max(p.grad.abs().max().item() for p in reference.parameters())
    print(f'float64 train step: max |output diff| = {max_diff(outs, expected):.1e}, '
          f'max |grad diff| = {grad_diff:.1e} (largest grad {scale:.1e})')
    assert max_diff(outs, expected) <= 1e-10
    assert grad_diff <= 1e-10 * scale
    ref_buffers = dict(reference.named_buffers())  # the same names: the authors' keys
    buffers = dict(model.named_buffers())
    assert buffers.keys() == ref_buffers.keys()
    for name, buf in buffers.items():
        assert torch.allclose(buf, ref_buffers[name], rtol=0, atol=1e-10), name  # statistics


def test_float32_gradients_match_the_reference():
    """Eval-mode norms (as with ``norm_eval``), float32: gradients within the float32 tolerance
    of the largest gradient."""
    reference, model = pair('1m', 10, seed=6, deploy=False)
    x = torch.randn(2, 3, 97, 131, generator=torch.Generator().manual_seed(5))
    sum(o.square().mean() for o in model(x)).backward()
    sum(o.square().mean() for o in reference(x)).backward()
    ref_params = dict(reference.named_parameters())
    grad_diff = max((p.grad - ref_params[n].grad).abs().max().item()
                    for n, p in model.named_parameters())
    scale = max(p.grad.abs().max().item() for p in reference.parameters())
    print(f'float32 gradients: max |diff| = {grad_diff:.1e} (largest grad {scale:.1e})')
    assert grad_diff <= FP32_RTOL * scale


def test_deploy_folds_every_batchnorm_and_refuses_training():
    _, model = pair('5m', 7, seed=0, deploy=True)
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
                   for m in model.modules())
    assert not any('running_mean' in key for key in model.state_dict())
    with pytest.raises(RuntimeError, match='deploy'):
        model.train()
    model.eval()  # still allowed


def test_deploy_with_syncbn_config():
    """SyncBN layers are _BatchNorm too and fold the same way (eval mode needs no process group)."""
    reference = ReferenceEMO('1m', 7).eval()
    randomize(reference, seed=8)
    model = EMO('1m', out_indices=range(5), norm_cfg=dict(type='SyncBN'))
    model.load_state_dict(reference.state_dict())
    model.switch_to_deploy()
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(11))
    with torch.no_grad():
        assert_close(model(x), reference(x), 'SyncBN deploy')


def test_pretrained_checkpoint_loads_then_deploys(tmp_path):
    reference = ReferenceEMO('2m', 7).eval()
    randomize(reference, seed=9)
    state = dict(reference.state_dict(), **{'head.weight': torch.zeros(1000, 200)})
    torch.save(state, tmp_path / 'net.pth')
    model = EMO('2m', out_indices=range(5),
                init_cfg=dict(type='Pretrained', checkpoint=str(tmp_path / 'net.pth')))
    model.init_weights()
    default = copy.deepcopy(model).eval()
    model.switch_to_deploy()
    x = torch.randn(2, 3, 96, 96, generator=torch.Generator().manual_seed(10))
    with torch.no_grad():
        expected = reference(x)
        assert_close(default(x), expected, 'loaded, default form')
        assert_close(model(x), expected, 'loaded, deploy form')


def test_outputs_keep_the_input_memory_format():
    model = EMO('1m', out_indices=range(5)).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert all(o.is_contiguous() for o in model(x))
        assert all(o.is_contiguous(memory_format=torch.channels_last)
                   for o in model(x.contiguous(memory_format=torch.channels_last)))


@pytest.mark.parametrize('shape,window_size,macs', (
    ((3, 224, 224), 7, 251_002_720), ((3, 97, 131), 10, 109_854_304)))
def test_module_hook_macs_are_unchanged(shape, window_size, macs):
    """The default form runs every counted module on the authors' shapes (``v`` on the padded
    map): mmcv's hook counter gives the figures of the pre-optimisation model."""
    model = EMO('1m', window_size=window_size, out_indices=range(5))
    flops, params = get_model_complexity_info(model, shape, print_per_layer_stat=False,
                                              as_strings=False)
    assert (flops, params) == (macs, 1_191_832)
