"""The EMOv2 backbone against its spec: counts, exact numerics (float64 reference, both forms,
training gradients), the hybrid attention's padding and single-window behaviour, training
switches, checkpoints in the authors' formats, bad input.

Every comparison is against ``emo_mm.testing.emov2_reference`` on random weights and random norm
statistics: float64 proves the same function, float32 bounds the rounding relative to the
outputs' magnitude (tests/conftest.py). No timing is asserted: ``tools/benchmark.py`` measures.
"""
import copy
import itertools

import pytest
import torch
import torch.nn.functional as F
from conftest import FP32_RTOL, assert_close
from mmengine.logging import MMLogger

from emo_mm import EMOv2
from emo_mm.models.backbones.emov2 import PRETRAINED
from emo_mm.models.backbones.pretrained import CheckpointError, cache_file_name
from emo_mm.models.layers import HybridWindowAttention
from emo_mm.testing.emov2_reference import ReferenceEMOv2, randomize, stage_channels

ARCHS = ('1m', '2m', '5m', '20m')
# The spec's counts of the authors' modules (backbone without the classifier).
PARAM_COUNTS = {'1m': 1_279_484, '2m': 2_182_912, '5m': 4_836_864, '20m': 19_745_312}
STATE_KEYS = {'1m': 224, '2m': 268, '5m': 268, '20m': 324}
STRIDES = (2, 4, 8, 16, 32)
CLASSIFIER = ('norm.norm.weight', 'norm.norm.bias', 'head.weight', 'head.bias')


def pair(arch: str, window_size: int = 10, seed: int = 0, dtype=torch.float32,
         deploy: bool = False, **kwargs) -> tuple:
    """The reference and our model with its weights, both in eval mode."""
    reference = ReferenceEMOv2(arch, window_size)
    randomize(reference, seed=seed)
    reference = reference.to(dtype).eval()
    model = EMOv2(arch, window_size=window_size, out_indices=range(5), **kwargs)
    model.load_state_dict(reference.state_dict())
    model = model.to(dtype).eval()
    if deploy:
        model.switch_to_deploy()
    return reference, model


def images(size, batch: int = 2, seed: int = 1, dtype=torch.float32) -> torch.Tensor:
    return torch.randn(batch, 3, *size, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def logged(tmp_path, name: str, load) -> str:
    """What ``load()`` logs through mmengine's current logger."""
    logger = MMLogger.get_instance(name, log_file=str(tmp_path / f'{name}.log'))
    load()
    for handler in logger.handlers:
        handler.flush()
    return (tmp_path / f'{name}.log').read_text()


def max_grad_diff(model, reference) -> tuple:
    ref_params = dict(reference.named_parameters())
    diff = max((p.grad - ref_params[n].grad).abs().max().item()
               for n, p in model.named_parameters())
    return diff, max(p.grad.abs().max().item() for p in reference.parameters())


# ---------------------------------------------------------------------------- structure
@pytest.mark.parametrize('arch', ARCHS)
def test_parameter_and_key_counts_are_the_authors(arch):
    model = EMOv2(arch, out_indices=range(5))
    assert sum(p.numel() for p in model.parameters()) == PARAM_COUNTS[arch]
    assert len(model.state_dict()) == STATE_KEYS[arch]
    assert model.state_dict().keys() == ReferenceEMOv2(arch).state_dict().keys()


def test_key_names_follow_the_authors_release():
    keys = EMOv2('5m').state_dict()
    for key, shape in (('stage0.0.conv.weight', (24, 3, 3, 3)), ('stage0.0.conv.bias', (24, )),
                       ('stage0.1.norm.running_var', (24, )), ('stage0.2.conv.weight',
                                                               (24, 24, 1, 1)),
                       ('stage1.0.eops.0.net.conv.weight', (96, 24, 1, 1)),
                       ('stage1.0.conv_local.norm.weight', (96, )),
                       ('stage3.0.norm.norm.weight', (72, )),  # LN on the stage's input width
                       ('stage3.1.eops.0.qk.conv.weight', (320, 160, 1, 1)),
                       ('stage3.1.eops.0.v.conv.bias', (640, )),
                       ('stage4.2.ls.gamma', (1, 288, 1, 1)), ('stage2.0.proj.conv.weight',
                                                               (72, 288, 1, 1))):
        assert tuple(keys[key].shape) == shape, key
    # mmengine's paramwise keys: `norm` must match exactly the norms, `head` nothing.
    names = [n for n, _ in EMOv2('5m').named_parameters()]
    assert not any('head' in n for n in names)
    assert {n.rsplit('.', 1)[0] for n in names if 'norm' in n} >= {
        'stage0.0.norm', 'stage1.1.norm', 'stage3.2.norm.norm', 'stage4.1.conv_local.norm'}


@pytest.mark.parametrize('arch', ARCHS)
def test_channels_and_strides_for_every_out_indices(arch):
    model = EMOv2(arch, out_indices=range(5)).eval()
    assert model.out_channels == stage_channels(arch)
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        full = model(x)
    for i, out in enumerate(full):
        assert out.shape == (1, stage_channels(arch)[i], 64 // STRIDES[i], 96 // STRIDES[i])
    subsets = [c for r in range(1, 6) for c in itertools.combinations(range(5), r)] \
        if arch == '1m' else [(0, ), (1, 3), (2, 4)]
    for indices in subsets:
        part = EMOv2(arch, out_indices=indices).eval()
        part.load_state_dict(model.state_dict(), strict=False)
        with torch.no_grad():
            outs = part(x)
        assert len(outs) == len(indices)
        for out, i in zip(outs, indices):
            assert torch.equal(out, full[i])


def test_stages_after_the_last_output_are_not_built():
    """No unused parameters (DDP with find_unused_parameters=False works)."""
    model = EMOv2('1m', out_indices=(3, 1))
    assert [name for name, _ in model.named_children()] == ['stage0', 'stage1', 'stage2',
                                                           'stage3']
    model(torch.randn(2, 3, 64, 64))[-1].mean().backward()
    assert all(p.grad is not None for p in model.parameters())


# ------------------------------------------------------------------ exactness, float64
# Stage-3/4 maps against the window: larger and not a multiple (97x131 gives 7x9 and 4x5 with
# window 10: padding, several windows per side), smaller than one window (33x35 gives 3x3 and
# 2x2: one padded window), 1x1 (20x20), exact multiples (320: 20x20 and 10x10, a single window
# at stage 4), and one window over the whole map (0).
# The two large archs (~1 min each on 2 busy cores) run under `slow`.
REFERENCE_CASES = (('1m', 10, (97, 131)), ('2m', 7, (33, 35)),
                   pytest.param('5m', 10, (320, 160), marks=pytest.mark.slow),
                   pytest.param('20m', 10, (41, 75), marks=pytest.mark.slow),
                   ('1m', 0, (45, 29)), ('2m', 10, (20, 20)))


@pytest.mark.parametrize('arch,window_size,size', REFERENCE_CASES)
def test_float64_outputs_equal_the_reference(arch, window_size, size):
    reference, model = pair(arch, window_size, seed=sum(size), dtype=torch.float64)
    x = images(size, batch=1, dtype=torch.float64)
    with torch.no_grad():
        expected, actual = reference(x), model(x)
    for i, out in enumerate(actual):
        assert out.shape == (1, stage_channels(arch)[i], *[-(-s // STRIDES[i]) for s in size])
    assert_close(actual, expected, f'{arch} window {window_size} {size} float64', rtol=1e-12)
    model.switch_to_deploy()  # folded in float64: the same function again
    with torch.no_grad():
        assert_close(model(x), expected, f'{arch} {size} deploy float64', rtol=1e-12)


@pytest.mark.parametrize('window_size,size', ((10, (97, 131)), (7, (64, 64))))
def test_float64_training_step_equals_the_reference(window_size, size):
    """Train mode (BatchNorm on batch statistics): outputs, every parameter gradient and the
    updated running statistics."""
    reference = ReferenceEMOv2('1m', window_size)
    randomize(reference, seed=5)
    reference = reference.double().train()
    model = EMOv2('1m', window_size=window_size, out_indices=range(5), drop_path_rate=0.)
    model.load_state_dict(reference.state_dict())
    model = model.double().train()
    x = images(size, batch=3, seed=4, dtype=torch.float64)
    outs, expected = model(x), reference(x)
    sum(o.square().mean() for o in outs).backward()
    sum(o.square().mean() for o in expected).backward()
    error = assert_close(outs, expected, 'float64 train outputs', rtol=1e-12)
    grad_diff, scale = max_grad_diff(model, reference)
    print(f'float64 train step: output {error:.1e}, max |grad diff| = {grad_diff:.1e} '
          f'(largest grad {scale:.1e})')
    assert grad_diff <= 1e-12 * scale
    ref_buffers = dict(reference.named_buffers())
    for name, buf in model.named_buffers():
        assert torch.allclose(buf, ref_buffers[name], rtol=0, atol=1e-12), name


# ------------------------------------------------------------------ exactness, float32
FP32_CASES = ((False, '1m', 10, (97, 131)), (False, '5m', 10, (75, 53)),
              (False, '2m', 0, (64, 48)), (True, '1m', 10, (33, 35)),
              (True, '5m', 10, (97, 131)), (True, '2m', 7, (20, 20)))


@pytest.mark.parametrize('deploy,arch,window_size,size', FP32_CASES)
def test_float32_fast_form_matches_the_reference(deploy, arch, window_size, size):
    reference, model = pair(arch, window_size, seed=sum(size) + 1, deploy=deploy)
    x = images(size)
    with torch.no_grad():
        assert_close(model(x), reference(x),
                     f'{arch} {"deploy" if deploy else "default"} window {window_size} {size}')


def test_float32_gradients_match_the_reference():
    """Eval-mode norms (as with ``norm_eval``): gradients within the float32 tolerance of the
    largest gradient."""
    reference, model = pair('1m', 10, seed=6)
    x = images((97, 131), seed=5)
    sum(o.square().mean() for o in model(x)).backward()
    sum(o.square().mean() for o in reference(x)).backward()
    grad_diff, scale = max_grad_diff(model, reference)
    print(f'float32 gradients: max |diff| = {grad_diff:.1e} (largest grad {scale:.1e})')
    assert grad_diff <= FP32_RTOL * scale


# ------------------------------------------------------------------- hybrid attention
def plain_attention(qk: torch.Tensor, v: torch.Tensor, heads: int) -> torch.Tensor:
    """Softmax attention over all pixels of ``(N, 2C, H, W)`` / ``(N, C_mid, H, W)`` maps."""
    n, c2, h, w = qk.shape
    q, k = qk.flatten(2).reshape(n, 2 * heads, c2 // (2 * heads), h * w).chunk(2, dim=1)
    vv = v.flatten(2).reshape(n, heads, v.shape[1] // heads, h * w)
    attn = (q.transpose(-1, -2) @ k * (c2 // (2 * heads))**-0.5).softmax(-1)
    return (vv @ attn.transpose(-1, -2)).reshape(n, v.shape[1], h, w)


@pytest.mark.parametrize('size', ((10, 10), (7, 9)))
def test_a_single_window_gives_twice_the_attention_over_the_padded_map(size):
    """H, W <= window: both partitions are the identity, so remote + close = 2x attention;
    the padded pixels (zeros -> keys = qk bias, values = GELU(v bias)) take part unmasked."""
    torch.manual_seed(0)
    attention = HybridWindowAttention(40, 120, dim_head=20, window_size=10).double().eval()
    x = torch.randn(2, 40, *size, dtype=torch.float64)
    padded = F.pad(x, (0, 10 - size[1], 0, 10 - size[0]))
    expected = 2 * plain_attention(attention.qk(padded), attention.v(padded), heads=2)
    with torch.no_grad():
        actual = attention(x)
    assert_close(actual, expected[:, :, :size[0], :size[1]], f'single window {size}',
                 rtol=1e-12)
    if size != (10, 10):  # masking the padded keys would change the result
        unpadded = 2 * plain_attention(attention.qk(x), attention.v(x), heads=2)
        assert (actual - unpadded).abs().max() > 1e-3


def test_traced_graph_takes_the_general_path_at_any_size():
    """A trace at a single-window size still runs both partitions, so the graph is right at
    sizes with several windows (ONNX export)."""
    torch.manual_seed(1)
    attention = HybridWindowAttention(40, 80, dim_head=20, window_size=10).eval()
    traced = torch.jit.trace(attention, torch.randn(1, 40, 10, 10), check_trace=False)
    x = torch.randn(1, 40, 23, 17)
    with torch.no_grad():
        assert_close(traced(x), attention(x), 'traced at 10x10, run at 23x17')


# ---------------------------------------------------------------- training switches
def test_frozen_stages_stay_frozen_and_train_returns_self():
    model = EMOv2('1m', frozen_stages=2, out_indices=(4, ))
    assert model.train() is model and model.eval() is model
    model.train()
    for i, stage in enumerate(model.stages):
        frozen = i <= 2
        assert all(p.requires_grad != frozen for p in stage.parameters())
        assert all(m.training != frozen for m in stage.modules())
    model(torch.randn(2, 3, 64, 64))[0].sum().backward()
    assert all(p.grad is None for p in model.stage2.parameters())
    assert all(p.grad is not None for p in model.stage4.parameters())


def test_frozen_stages_reach_the_built_ones_only():
    model = EMOv2('1m', frozen_stages=2, out_indices=(2, )).train()
    assert not any(p.requires_grad for p in model.parameters())
    with pytest.raises(ValueError, match=r'frozen_stages must be an int in -1\.\.2 .*'
                       r'out_indices=\(2,\) builds stages 0\.\.2 only'):
        EMOv2('1m', frozen_stages=4, out_indices=(2, ))


def test_norm_eval_keeps_batchnorm_statistics_not_layernorm_training():
    model = EMOv2('1m', norm_eval=True).train()
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    lns = [m for m in model.modules() if isinstance(m, torch.nn.LayerNorm)]
    assert bns and lns and not any(m.training for m in bns) and all(m.training for m in lns)
    before = {k: v.clone() for k, v in model.state_dict().items() if 'running' in k}
    model(torch.randn(2, 3, 64, 64))
    after = model.state_dict()
    assert all(torch.equal(v, after[k]) for k, v in before.items())
    trained = EMOv2('1m', norm_eval=False).train()
    trained.load_state_dict(model.state_dict())
    trained(torch.randn(2, 3, 64, 64))
    assert not torch.equal(trained.stage1[1].norm.running_mean,
                           before['stage1.1.norm.running_mean'])


def test_drop_path_rates_and_training_only_effect():
    rates = [b.drop_path.drop_prob for s in EMOv2('1m').stages[1:] for b in s
             if hasattr(b.drop_path, 'drop_prob')]
    expected = torch.linspace(0, 0.04036, 15).tolist()[1:]  # the first block's rate is 0
    assert rates == pytest.approx(expected)
    x = torch.randn(2, 3, 64, 64)
    torch.manual_seed(0)
    plain = EMOv2('1m', drop_path_rate=0.0, norm_eval=True, out_indices=(4, ))
    dropped = EMOv2('1m', drop_path_rate=0.8, norm_eval=True, out_indices=(4, ))
    randomize(plain, seed=2)  # layer scales near 1: the residual branches count
    dropped.load_state_dict(plain.state_dict())
    with torch.no_grad():
        assert torch.equal(plain.eval()(x)[0], dropped.eval()(x)[0])
        dropped.train()
        assert not torch.allclose(dropped(x)[0], dropped(x)[0])


def test_deploy_folds_every_batchnorm_and_layer_scale_and_refuses_training():
    _, model = pair('2m', deploy=True)
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
                   for m in model.modules())
    assert not any(k.endswith(('running_mean', 'ls.gamma')) for k in model.state_dict())
    with pytest.raises(RuntimeError, match='deploy'):
        model.train()


def test_outputs_keep_the_input_memory_format_and_syncbn_keeps_eps():
    model = EMOv2('1m', out_indices=range(5)).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert all(o.is_contiguous() for o in model(x))
        assert all(o.is_contiguous(memory_format=torch.channels_last)
                   for o in model(x.contiguous(memory_format=torch.channels_last)))
    bns = [m for m in EMOv2('1m', norm_cfg=dict(type='SyncBN')).modules()
           if isinstance(m, torch.nn.SyncBatchNorm)]
    assert bns and all(m.eps == 1e-6 for m in bns)


# ----------------------------------------------------------------------- checkpoints
def authors_checkpoint(arch: str, seed: int = 3) -> dict:
    """The state dict of the authors' ImageNet model: our keys plus the four classifier keys."""
    reference = ReferenceEMOv2(arch)
    randomize(reference, seed=seed)
    width = reference.stage4[-1].proj.conv.out_channels
    return dict(reference.state_dict(), **{
        'norm.norm.weight': torch.ones(width), 'norm.norm.bias': torch.zeros(width),
        'head.weight': torch.zeros(1000, width), 'head.bias': torch.zeros(1000)})


@pytest.mark.parametrize('wrapper', (None, 'net', 'net_E', 'state_dict', 'model'))
def test_the_authors_checkpoint_forms_load_without_renaming(wrapper, tmp_path):
    state = authors_checkpoint('1m')
    saved = state if wrapper is None else {wrapper: state, 'epoch': 300}
    torch.save(saved, tmp_path / 'EMOv2_1M_224.pth')
    model = EMOv2('1m', out_indices=range(5), init_cfg=dict(
        type='Pretrained', checkpoint=str(tmp_path / 'EMOv2_1M_224.pth')))
    log = logged(tmp_path, f'emov2_forms_{wrapper}', model.init_weights)
    assert 'skipped the classifier keys head.bias, head.weight, norm.norm.bias, ' \
        'norm.norm.weight' in log
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key]), key


def test_net_and_ema_entries_are_told_apart(tmp_path):
    net, ema = authors_checkpoint('1m', seed=1), authors_checkpoint('1m', seed=2)
    torch.save({'net': net, 'net_E': ema, 'optimizer': {}}, tmp_path / 'ckpt.pth')
    model = EMOv2('1m', out_indices=(1, 2, 3, 4))
    model.load_pretrained(str(tmp_path / 'ckpt.pth'))
    assert torch.equal(model.stage4[1].ls.gamma, net['stage4.1.ls.gamma'])
    model.load_pretrained(str(tmp_path / 'ckpt.pth'), state_key='net_E')
    assert torch.equal(model.stage4[1].ls.gamma, ema['stage4.1.ls.gamma'])


def test_keys_of_stages_not_built_are_skipped_knowingly(tmp_path):
    state = authors_checkpoint('2m')
    torch.save(state, tmp_path / 'net.pth')
    model = EMOv2('2m', out_indices=(1, 2))
    log = logged(tmp_path, 'emov2_unbuilt',
                 lambda: model.load_pretrained(str(tmp_path / 'net.pth')))
    assert 'skipped the keys of the stages not built (after the last of out_indices) ' \
        'stage3.' in log
    assert not hasattr(model, 'stage3') and not hasattr(model, 'stage4')
    assert torch.equal(model.stage2[2].proj.conv.weight, state['stage2.2.proj.conv.weight'])


def test_missing_and_unexpected_keys_are_named(tmp_path):
    state = authors_checkpoint('1m')
    del state['stage3.2.eops.0.qk.conv.bias']
    state['stage3.2.eops.0.qkv.conv.bias'] = torch.zeros(160)
    torch.save(state, tmp_path / 'net.pth')
    with pytest.raises(CheckpointError, match=r'1 missing keys: stage3\.2\.eops\.0\.qk\.conv\.'
                       r'bias; 1 unexpected keys: stage3\.2\.eops\.0\.qkv\.conv\.bias'):
        EMOv2('1m').load_pretrained(str(tmp_path / 'net.pth'))
    torch.save(authors_checkpoint('2m'), tmp_path / 'other.pth')
    with pytest.raises(CheckpointError, match='shape mismatches: .*checkpoint .* vs model'):
        EMOv2('1m').load_pretrained(str(tmp_path / 'other.pth'))


def test_a_loaded_checkpoint_deploys_to_the_same_outputs(tmp_path):
    reference = ReferenceEMOv2('2m').eval()
    randomize(reference, seed=9)
    torch.save(authors_checkpoint('2m', seed=9), tmp_path / 'net.pth')
    model = EMOv2('2m', out_indices=range(5),
                  init_cfg=dict(type='Pretrained', checkpoint=str(tmp_path / 'net.pth')))
    model.init_weights()
    default = copy.deepcopy(model).eval()
    model.switch_to_deploy()
    x = images((96, 96), seed=10)
    with torch.no_grad():
        expected = reference(x)
        assert_close(default(x), expected, 'loaded, default form')
        assert_close(model(x), expected, 'loaded, deploy form')


def test_every_release_file_has_its_own_url_and_cache_name():
    assert set(PRETRAINED) == {'1m', '1m_kd', '2m', '2m_kd', '5m', '5m_kd', '5m_512_kd'}
    assert len(set(PRETRAINED.values())) == len(PRETRAINED)
    names = {cache_file_name(url) for url in PRETRAINED.values()}
    assert len(names) == len(PRETRAINED)
    assert cache_file_name(PRETRAINED['1m_kd']).startswith(
        'emov2_pretrained_weights-EMOv2_1M_224_KD-')
    assert not any('20M' in url for url in PRETRAINED.values())  # none was released


# ------------------------------------------------------------------------ bad input
@pytest.mark.parametrize('kwargs, message', [
    (dict(arch='3m'), r"unknown EMOv2 arch '3m'.*\['1m', '20m', '2m', '5m'\]"),
    (dict(arch=dict(depths=(2, 2, 8, 3))), r'missing fields \[.embed_dims.'),
    (dict(arch=dict(EMOv2.arch_zoo['1m'], depths=(2, 2))), r'one value per stage'),
    (dict(arch=dict(EMOv2.arch_zoo['1m'], dim_heads=(16, 16, 32, 20))),
     r'stage3: width 80 is not divisible by dim_head 32'),
    (dict(arch=dict(EMOv2.arch_zoo['1m'], exp_ratios=(2, 2.5, 3.0125, 3.5))),
     r'stage3: value width .* not divisible by its 4 attention heads'),
    (dict(out_indices=(1, 5)), r'out_indices must be .* 0\.\.4'),
    (dict(out_indices=()), r'out_indices must be'),
    (dict(frozen_stages=5), r'frozen_stages must be an int in -1\.\.4'),
    (dict(window_size=-7), r'window_size must be a non-negative int'),
    (dict(window_size=(10, 10)), r'window_size must be'),
])
def test_bad_arguments_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        EMOv2(**kwargs)


@pytest.mark.parametrize('shape', ((3, 64, 64), (1, 1, 64, 64), (1, 4, 64, 64)))
def test_bad_inputs_are_refused(shape):
    with pytest.raises(ValueError, match=r'EMOv2 expects images of shape \(N, 3, H, W\)'):
        EMOv2('1m')(torch.randn(shape))


@pytest.mark.parametrize('scope', ('mmdet', 'mmseg'))
def test_registries_of_both_frameworks_build_emov2(scope):
    import importlib
    registry = importlib.import_module(f'{scope}.registry').MODELS
    model = registry.build(dict(type='EMOv2', arch='1m', out_indices=(1, 2, 3, 4)))
    assert isinstance(model, EMOv2)
    with torch.no_grad():
        outs = model.eval()(torch.randn(1, 3, 64, 64))
    assert [o.shape[1] for o in outs] == [32, 48, 80, 180]


def test_onnx_export_of_the_deploy_form_matches_at_other_sizes(tmp_path):
    """The deploy form exported once (TorchScript exporter, symbolic batch/height/width, traced
    at a single-window size) runs in onnxruntime at sizes with padding and several windows."""
    import inspect

    import onnxruntime as ort
    reference, model = pair('1m', 10, seed=12, deploy=True)
    extra = {'dynamo': False} if 'dynamo' in inspect.signature(torch.onnx.export).parameters \
        else {}
    out = tmp_path / 'emov2_1m.onnx'
    torch.onnx.export(model, (images((64, 64), batch=1), ), str(out), input_names=['input'],
                      output_names=[f'out{i}' for i in range(5)], opset_version=17,
                      dynamic_axes={'input': {0: 'batch', 2: 'height', 3: 'width'}}, **extra)
    session = ort.InferenceSession(str(out), providers=['CPUExecutionProvider'])
    for size in ((97, 131), (33, 35)):
        x = images(size, seed=sum(size))
        with torch.no_grad():
            expected = reference(x)
        actual = [torch.from_numpy(o) for o in session.run(None, {'input': x.numpy()})]
        assert_close(actual, expected, f'onnxruntime {size}')
