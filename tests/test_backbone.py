"""The EMO backbone against the spec: shapes, exact numerics, training behaviour, bad input."""
import itertools

import pytest
import torch
from conftest import assert_close

from emo_mm import EMO
from emo_mm.testing.emo_reference import ReferenceEMO, randomize, stage_channels

ARCHS = ('1m', '2m', '5m', '6m')
PARAM_COUNTS = {'1m': 1_191_832, '2m': 2_176_072, '5m': 4_819_272, '6m': 5_846_856}
STRIDES = (2, 4, 8, 16, 32)


def count_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize('arch', ARCHS)
def test_parameter_counts_match_the_paper(arch):
    assert count_params(EMO(arch)) == PARAM_COUNTS[arch]


@pytest.mark.parametrize('arch', ARCHS)
def test_channels_and_strides_for_every_out_indices(arch):
    model = EMO(arch, out_indices=range(5)).eval()
    assert model.out_channels == stage_channels(arch)
    with torch.no_grad():
        full = model(torch.randn(1, 3, 64, 96))
    for i, out in enumerate(full):
        assert out.shape == (1, stage_channels(arch)[i], 64 // STRIDES[i], 96 // STRIDES[i])
    for r in range(1, 6):
        for indices in itertools.combinations(range(5), r):
            model.out_indices = tuple(sorted(indices))  # the built model returns any of them
            with torch.no_grad():
                outs = model(torch.randn(1, 3, 64, 96))
            assert [o.shape[1] for o in outs] == [stage_channels(arch)[i] for i in indices]


def test_out_indices_are_returned_in_order():
    model = EMO('1m', out_indices=(4, 1, 3)).eval()
    with torch.no_grad():
        outs = model(torch.randn(1, 3, 64, 64))
    assert [o.shape[1] for o in outs] == [32, 80, 168]


# What distinguishes the cases is how the stage-3/4 maps sit against the window: larger and
# not a multiple (97x131 gives 7x9 and 4x5: padding, several windows), smaller than one
# window (64x48: 4x3; 33x35: 3x3), down to 1x1 (20x20), or one window over the whole map
# (0). Each window meets two of these, each size two windows.
WINDOW_CASES = ((7, (97, 131)), (7, (33, 35)), (10, (97, 131)), (10, (64, 48)),
                (16, (64, 48)), (16, (20, 20)), (0, (33, 35)), (0, (20, 20)))


@pytest.mark.parametrize('window_size,size', WINDOW_CASES)
def test_odd_sizes_and_windows_match_the_reference(window_size, size):
    """Sizes that need padding, that are below one window (33x35 gives a 3x3 stage3 map)."""
    arch = '1m' if window_size in (7, 16) else '5m'
    reference = ReferenceEMO(arch, window_size).eval()
    randomize(reference, seed=sum(size) + window_size)
    model = EMO(arch, window_size=window_size, out_indices=range(5)).eval()
    model.load_state_dict(reference.state_dict())
    x = torch.randn(2, 3, *size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected, actual = reference(x), model(x)
    for i, (a, e) in enumerate(zip(actual, expected)):
        assert a.shape == e.shape == (2, stage_channels(arch)[i], *[
            -(-s // STRIDES[i]) for s in size])
    assert_close(actual, expected, f'{arch} window {window_size} {size}')


@pytest.mark.parametrize('dtype', (torch.float32, torch.float64), ids=('fp32', 'fp64'))
@pytest.mark.parametrize('arch', ARCHS)
def test_every_arch_matches_the_reference(arch, dtype):
    """In float64 the two computations agree to ~1e-14: the same function. Float32 adds only
    rounding, bounded relative to the outputs' magnitude (tests/conftest.py)."""
    reference = ReferenceEMO(arch, 7).eval()
    randomize(reference, seed=7)
    model = EMO(arch, window_size=7, out_indices=range(5)).eval()
    model.load_state_dict(reference.state_dict())
    reference, model = reference.to(dtype), model.to(dtype)
    x = torch.randn(2, 3, 112, 80, generator=torch.Generator().manual_seed(2), dtype=dtype)
    with torch.no_grad():
        assert_close(model(x), reference(x), f'{arch} {dtype}')


def test_per_stage_window_sizes():
    """Each attention stage uses its own window; stages 1-2 do not attend."""
    x = torch.randn(1, 3, 224, 224)  # stage3 map 14x14, stage4 map 7x7
    base = EMO('1m', window_size=(7, 7, 7, 7), out_indices=range(5)).eval()
    randomize(base, seed=3)
    other = EMO('1m', window_size=(1, 1, 7, 3), out_indices=range(5)).eval()
    other.load_state_dict(base.state_dict())
    with torch.no_grad():
        a, b = base(x), other(x)
    for stage in (1, 2, 3):
        assert torch.equal(a[stage], b[stage])
    assert (a[4] - b[4]).abs().max() > 1e-3  # 3x3 windows over a padded 9x9 map in stage 4


def test_frozen_stages_stay_frozen():
    model = EMO('1m', frozen_stages=2, out_indices=(4, ))
    model.train()
    for i, stage in enumerate(model.stages):
        frozen = i <= 2
        assert all(p.requires_grad != frozen for p in stage.parameters())
        assert all(m.training != frozen for m in stage.modules())
    model(torch.randn(2, 3, 64, 64))[0].sum().backward()
    assert all(p.grad is None for p in model.stage2.parameters())
    assert all(p.grad is not None for p in model.stage4.parameters())


def test_frozen_stages_minus_one_freezes_nothing():
    model = EMO('1m', frozen_stages=-1).train()
    assert all(p.requires_grad for p in model.parameters())


def test_norm_eval_keeps_batchnorm_statistics():
    model = EMO('1m', norm_eval=True).train()
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns and not any(m.training for m in bns)
    before = {k: v.clone() for k, v in model.state_dict().items() if 'running' in k}
    model(torch.randn(2, 3, 64, 64))
    after = model.state_dict()
    assert all(torch.equal(v, after[k]) for k, v in before.items())
    trained = EMO('1m', norm_eval=False).train()
    trained.load_state_dict(model.state_dict())
    trained(torch.randn(2, 3, 64, 64))
    assert not torch.equal(trained.stage1[0].norm.running_mean,
                           before['stage1.0.norm.running_mean'])


def test_drop_path_acts_only_in_training():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 64, 64)
    plain = EMO('1m', drop_path_rate=0.0, norm_eval=True, out_indices=(4, ))
    dropped = EMO('1m', drop_path_rate=0.8, norm_eval=True, out_indices=(4, ))
    dropped.load_state_dict(plain.state_dict())
    with torch.no_grad():
        plain.eval(), dropped.eval()
        assert torch.equal(plain(x)[0], dropped(x)[0])
        plain.train(), dropped.train()  # norm_eval: BN frozen, so only drop path is random
        assert torch.allclose(plain(x)[0], plain.eval()(x)[0], atol=1e-6)
        a, b = dropped(x)[0], dropped(x)[0]
    assert not torch.allclose(a, b)


def test_default_drop_path_follows_the_arch():
    rates = [b.drop_path.drop_prob for s in EMO('5m').stages[1:] for b in s
             if hasattr(b.drop_path, 'drop_prob')]
    assert rates and max(rates) == pytest.approx(0.05)
    rates_1m = [b.drop_path.drop_prob for s in EMO('1m').stages[1:] for b in s
                if hasattr(b.drop_path, 'drop_prob')]
    assert max(rates_1m) == pytest.approx(0.04036)


def test_dict_arch_builds_a_custom_model():
    arch = dict(EMO.arch_zoo['1m'], embed_dims=(32, 48, 80, 160), dim_heads=(16, 16, 20, 20))
    model = EMO(arch, out_indices=(4, )).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 64, 64))[0].shape == (1, 160, 2, 2)


def test_norm_cfg_keeps_the_authors_eps():
    model = EMO('1m', norm_cfg=dict(type='SyncBN'))
    bns = [m for m in model.modules() if isinstance(m, torch.nn.SyncBatchNorm)]
    assert bns and all(m.eps == 1e-6 for m in bns)


# ------------------------------------------------------------------------ bad input
@pytest.mark.parametrize('kwargs, message', [
    (dict(arch='3m'), r"unknown EMO arch '3m'.*\['1m', '2m', '5m', '6m'\]"),
    (dict(arch=dict(depths=(2, 2, 8, 3))), r'missing fields \[.stem_dim.'),
    (dict(arch=dict(EMO.arch_zoo['1m'], depths=(2, 2))), r'one value per stage'),
    (dict(arch=dict(EMO.arch_zoo['1m'], dim_heads=(16, 16, 32, 21))),
     r'stage3: width 80 is not divisible by dim_head 32'),
    (dict(out_indices=(1, 5)), r'out_indices must be .* 0\.\.4'),
    (dict(out_indices=(-1, )), r'out_indices must be'),
    (dict(out_indices=()), r'out_indices must be'),
    (dict(frozen_stages=5), r'frozen_stages must be an int in -1\.\.4'),
    (dict(frozen_stages=-2), r'frozen_stages must be'),
    (dict(window_size=-7), r'window_size must be a non-negative int'),
    (dict(window_size=7.5), r'window_size must be'),
    (dict(window_size=(7, 7)), r'window_size must be'),
])
def test_bad_arguments_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        EMO(**kwargs)


def test_arch_of_a_wrong_type_is_refused():
    with pytest.raises(TypeError, match='arch must be a name'):
        EMO(arch=5)


@pytest.mark.parametrize('shape', ((3, 64, 64), (1, 1, 64, 64), (1, 4, 64, 64)))
def test_bad_inputs_are_refused(shape):
    with pytest.raises(ValueError, match=r'expects images of shape \(N, 3, H, W\)'):
        EMO('1m')(torch.randn(shape))
