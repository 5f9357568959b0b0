"""The EfficientMod backbone: exact against the literal reference, arguments, registration,
and the authors' timm-style checkpoints.

Every numeric comparison is against ``emo_mm.testing.efficientmod_reference`` (written from the
spec: NCHW copies for the convolutions, ``repeat`` for the context, explicit softmax attention)
on random weights, random LayerNorm affines and random layer scales; the relative difference is
printed (``pytest -s``).
"""
import argparse
import importlib
import pickle

import pytest
import torch
from conftest import assert_close
from mmengine.logging import MMLogger

from emo_mm import EfficientMod
from emo_mm.testing.efficientmod_reference import ReferenceEfficientMod, randomize

ARCHS = ('xxs', 'xs', 's', 's_conv')
# The acceptance: backbone parameters (the classifier without norm and head).
PARAMS = {'xxs': 4_478_752, 'xs': 6_337_968, 's': 12_583_560, 's_conv': 12_526_648}
RTOL = 1e-5
CLASSIFIER = ('norm.weight', 'norm.bias', 'head.weight', 'head.bias')


def pair(arch: str, seed: int, **kwargs) -> tuple:
    """The reference with random weights and our backbone holding the same, both in eval mode."""
    reference = ReferenceEfficientMod(arch).eval()
    randomize(reference, seed=seed)
    model = EfficientMod(arch, **kwargs)
    model.load_state_dict(reference.state_dict())
    return reference, model.eval()


def image(*shape: int, seed: int = 0, dtype=torch.float32) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)).to(dtype)


# ------------------------------------------------------------------------ structure
@pytest.mark.parametrize('arch', ARCHS)
def test_parameter_counts_and_keys_are_the_authors(arch):
    model, reference = EfficientMod(arch), ReferenceEfficientMod(arch)
    assert sum(p.numel() for p in model.parameters()) == PARAMS[arch]
    own, expected = model.state_dict(), reference.state_dict()
    assert list(own) == list(expected)
    assert all(own[k].shape == expected[k].shape for k in own)


def test_default_init_is_the_authors():
    model = EfficientMod('xxs')
    model.init_weights()
    fc1 = model.layers[2].blocks[1].mlp.fc1
    assert 0.015 < fc1.weight.std().item() < 0.025
    assert torch.all(fc1.bias == 0) and torch.all(model.layers[1].blocks[0].norm.weight == 1)
    assert torch.all(model.layers[0].blocks[0].gamma_1 == 1e-4)


def test_hybrid_blocks_follow_the_spec():
    model = EfficientMod('xxs')
    stage3, stage4 = model.layers[2].blocks, model.layers[3].blocks
    assert [type(b).__name__ for b in stage4] == ['EfficientModBlock'] * 2 + ['AttentionBlock'] * 2
    assert [type(b).__name__ for b in stage3] == ['EfficientModBlock'] * 6 + ['AttentionBlock']
    assert [b.mlp.expansion for b in stage3[:6]] == [1, 6] * 3
    attn = stage3[6].attn
    # head_dim = max(128 // 8, 32) = 32: qkv is 3 * 8 * 32 wide, proj maps 256 back to 128.
    assert attn.qkv.weight.shape == (768, 128) and attn.qkv.bias is None
    assert attn.proj.weight.shape == (128, 256)
    assert stage4[2].mlp.fc1.weight.shape == (1024, 256) and stage4[2].attn.head_dim == 32
    assert torch.all(model.layers[0].blocks[0].gamma_1 == 1e-4)
    assert model.layers[0].blocks[0].norm.eps == 1e-5
    assert not hasattr(model.layers[3], 'downsample')
    assert EfficientMod('xxs', layer_scale_init_value=0.5).layers[1].blocks[1].gamma_1[0] == 0.5


# ------------------------------------------------------------------------ exactness
@pytest.mark.parametrize('arch', ARCHS)
def test_every_arch_matches_the_reference_in_float32(arch):
    reference, model = pair(arch, seed=3)
    for size in ((224, 224), (97, 131), (64, 48)):
        x = image(1, 3, *size, seed=sum(size))
        with torch.no_grad():
            assert_close(model(x), reference(x), f'{arch} {size[0]}x{size[1]} fp32', rtol=RTOL)


def test_detection_size_matches_the_reference():
    reference, model = pair('xxs', seed=5)
    x = image(1, 3, 608, 800, seed=2)
    with torch.no_grad():
        outs = model(x)
        assert_close(outs, reference(x), 'xxs 608x800 fp32', rtol=RTOL)
    assert [o.shape[-2:] for o in outs] == [(152, 200), (76, 100), (38, 50), (19, 25)]


@pytest.mark.parametrize('arch', ARCHS)
def test_every_arch_is_exact_in_float64(arch):
    reference, model = pair(arch, seed=4)
    reference.double(), model.double()
    x = image(1, 3, 97, 131, seed=1, dtype=torch.float64)
    with torch.no_grad():
        assert_close(model(x), reference(x), f'{arch} 97x131 fp64')


@pytest.mark.parametrize('arch', ('xxs', 'xs'))
def test_training_step_and_gradients_equal_the_reference_in_float64(arch):
    reference, model = pair(arch, seed=6, drop_path_rate=0.)
    reference.double().train(), model.double().train()
    x = image(2, 3, 64, 48, seed=3, dtype=torch.float64)
    outs = model(x)
    expected = reference(x)
    assert_close(outs, expected, f'{arch} train-mode outputs fp64')
    weights = [torch.randn(o.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(i))
               for i, o in enumerate(expected)]
    sum((o * w).sum() for o, w in zip(outs, weights)).backward()
    sum((o * w).sum() for o, w in zip(expected, weights)).backward()
    grads = dict(model.named_parameters())
    names = [name for name, _ in reference.named_parameters()]
    assert_close([grads[n].grad for n in names], [p.grad for p in reference.parameters()],
                 f'{arch} all {len(names)} parameter gradients fp64')


def test_channels_last_input_gives_channels_last_outputs():
    reference, model = pair('xxs', seed=7)
    x = image(2, 3, 96, 64, seed=4)
    with torch.no_grad():
        outs = model(x.contiguous(memory_format=torch.channels_last))
        assert_close(outs, reference(x), 'xxs channels-last input', rtol=RTOL)
    assert all(o.is_contiguous(memory_format=torch.channels_last) for o in outs)
    with torch.no_grad():
        assert all(o.is_contiguous() for o in model(x))


def test_inference_leaves_the_input_untouched():
    model = EfficientMod('xxs').eval()
    x = image(1, 3, 64, 64)
    copy = x.clone()
    with torch.no_grad():
        model(x)
    assert torch.equal(x, copy)


# ------------------------------------------------------------------------- arguments
def test_out_indices_strides_and_channels():
    model = EfficientMod('s_conv', out_indices=(3, 1))
    assert model.out_channels == (40, 80, 160, 344)
    outs = model(image(1, 3, 128, 96))
    assert [tuple(o.shape) for o in outs] == [(1, 80, 16, 12), (1, 344, 4, 3)]


def test_drop_path_rate_defaults_to_the_archs_and_grows_over_all_blocks():
    def rates(model):
        return [getattr(b.drop_path, 'drop_prob', 0.) for layer in model.layers
                for b in layer.blocks]

    assert max(rates(EfficientMod('xxs'))) == 0 and max(rates(EfficientMod('xs'))) == 0
    s = rates(EfficientMod('s'))
    assert len(s) == 28 and s[0] == 0 and s[-1] == pytest.approx(0.02)
    assert s == pytest.approx(torch.linspace(0, 0.02, 28).tolist())
    assert rates(EfficientMod('s_conv'))[-1] == pytest.approx(0.02)
    assert rates(EfficientMod('s', drop_path_rate=0.1))[-1] == pytest.approx(0.1)
    assert max(rates(EfficientMod('s', drop_path_rate=0.))) == 0


def test_drop_path_acts_only_in_training():
    model = EfficientMod('xxs', drop_path_rate=0.5)
    x = image(4, 3, 32, 32)
    torch.manual_seed(0)
    first = model(x)[3]
    second = model(x)[3]
    assert not torch.allclose(first, second)
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x)[3], model(x)[3])


@pytest.mark.parametrize('frozen_stages', (-1, 0, 1, 4))
def test_frozen_stages(frozen_stages):
    model = EfficientMod('xxs', frozen_stages=frozen_stages)
    model.train()
    frozen = [] if frozen_stages < 0 else [model.patch_embed, *model.layers[:frozen_stages]]
    for module in [model.patch_embed, *model.layers]:
        is_frozen = any(module is m for m in frozen)
        assert all(p.requires_grad != is_frozen for p in module.parameters())
        assert all(m.training != is_frozen for m in module.modules())
    if 0 <= frozen_stages < 4:
        outs = model(image(1, 3, 64, 64))
        sum(o.sum() for o in outs).backward()
        assert model.patch_embed.proj.weight.grad is None
        assert model.layers[3].blocks[0].gamma_1.grad is not None


@pytest.mark.parametrize('kwargs, match', [
    (dict(arch='tiny'), r"unknown EfficientMod arch 'tiny'; valid archs: "
                        r"\['s', 's_conv', 'xs', 'xxs'\]"),
    (dict(arch=dict(embed_dims=(8, 8, 8, 8))), r"missing fields \['depths', "),
    (dict(arch={**EfficientMod.arch_zoo['xxs'], 'depths': (2, 2, 6)}),
     r"'depths' needs 4 ints >= 1, got \(2, 2, 6\)"),
    (dict(arch={**EfficientMod.arch_zoo['xxs'], 'mlp_ratios': (1, 2.5)}),
     r"'mlp_ratios' needs 2 ints >= 1"),
    (dict(arch={**EfficientMod.arch_zoo['xxs'], 'att_ratios': (4, 4, 0, 4)}),
     r"'att_ratios' needs 4 positive numbers"),
    (dict(arch={**EfficientMod.arch_zoo['xxs'], 'heads': 4}), r"unknown fields \['heads'\]"),
    (dict(out_indices=(0, 4)), r'out_indices must be distinct stage indices in 0\.\.3'),
    (dict(out_indices=(1, 1)), r'out_indices must be distinct'),
    (dict(out_indices=()), r'out_indices must be distinct'),
    (dict(frozen_stages=5), r'frozen_stages must be an int in -1\.\.4'),
    (dict(drop_path_rate=1.5), r'drop_path_rate must be a number in \[0, 1\)'),
])
def test_bad_arguments_are_refused_with_the_valid_choices(kwargs, match):
    with pytest.raises(ValueError, match=match):
        EfficientMod(**kwargs)


def test_arch_of_the_wrong_type_and_bad_input():
    with pytest.raises(TypeError, match='arch must be a name in'):
        EfficientMod(arch=['xxs'])
    with pytest.raises(ValueError, match=r'expects images of shape \(N, 3, H, W\), got '
                                         r'\(1, 1, 32, 32\)'):
        EfficientMod('xxs')(torch.zeros(1, 1, 32, 32))


def test_custom_arch_dict_builds():
    arch = dict(embed_dims=(8, 16, 24, 32), depths=(1, 2, 1, 1), attention_depths=(0, 1, 0, 1),
                mlp_ratios=(2, 3), att_ratios=(1, 2, 1, 1.5))
    model = EfficientMod(arch)
    assert model.layers[1].blocks[1].mlp.expansion == 3
    assert model.layers[1].blocks[2].attn.head_dim == 32  # max(16 // 8, 32)
    assert [o.shape[1] for o in model(image(1, 3, 40, 40))] == [8, 16, 24, 32]


@pytest.mark.parametrize('scope', ('mmdet', 'mmseg'))
def test_registered_for_mmdet_and_mmseg(scope):
    registry = importlib.import_module(f'{scope}.registry').MODELS
    model = registry.build(dict(type='EfficientMod', arch='xxs', out_indices=(1, 2, 3)))
    assert isinstance(model, EfficientMod)
    assert [o.shape[1] for o in model(image(1, 3, 64, 64))] == [64, 128, 256]


# ----------------------------------------------------------------------- checkpoints
def official_checkpoint(path, arch: str = 'xxs') -> dict:
    """A file in the authors' (timm training script's) format: weights under ``state_dict``,
    EMA weights under ``state_dict_ema``, the classifier's ``norm``/``head``, optimizer state
    and the training arguments pickled as an argparse.Namespace."""
    reference = ReferenceEfficientMod(arch)
    randomize(reference, seed=0)
    state = {k: v.clone() for k, v in reference.state_dict().items()}
    randomize(reference, seed=1)
    ema = {k: v.clone() for k, v in reference.state_dict().items()}
    width = reference.layers[3].blocks[0].norm.weight.shape[0]
    for weights in (state, ema):
        weights.update({'norm.weight': torch.ones(width), 'norm.bias': torch.zeros(width),
                        'head.weight': torch.randn(1000, width), 'head.bias': torch.zeros(1000)})
    checkpoint = {
        'epoch': 299, 'arch': f'efficientMod_{arch}', 'state_dict': state,
        'optimizer': {'state': {0: {'exp_avg': torch.zeros(3)}},
                      'param_groups': [{'lr': 4e-3, 'params': [0]}]},
        'version': 2, 'args': argparse.Namespace(model=f'efficientMod_{arch}', lr=4e-3,
                                                 model_ema=True, input_size=None),
        'state_dict_ema': ema, 'metric': 77.1,
    }
    torch.save(checkpoint, path)
    return checkpoint


def test_official_checkpoint_needs_the_namespace_allowed(tmp_path):
    """torch.load's weights_only default refuses the pickled training arguments on its own;
    emo_mm allows exactly argparse.Namespace and nothing else."""
    official_checkpoint(tmp_path / 'ckpt.pth')
    with pytest.raises(pickle.UnpicklingError, match='argparse.Namespace'):
        torch.load(tmp_path / 'ckpt.pth', weights_only=True)


@pytest.mark.parametrize('scope', ('mmdet', 'mmseg'))
def test_official_checkpoint_loads_its_state_dict_through_init_cfg(tmp_path, scope):
    path = tmp_path / 'ckpt.pth'
    checkpoint = official_checkpoint(path)
    logger = MMLogger.get_instance(f'test_effmod_{scope}', log_file=str(tmp_path / 'log.txt'))
    registry = importlib.import_module(f'{scope}.registry').MODELS
    model = registry.build(dict(type='EfficientMod', arch='xxs',
                                init_cfg=dict(type='Pretrained', checkpoint=str(path))))
    model.init_weights()
    own = model.state_dict()
    assert set(own) == set(checkpoint['state_dict']) - set(CLASSIFIER)
    assert all(torch.equal(own[k], checkpoint['state_dict'][k]) for k in own)
    for handler in logger.handlers:
        handler.flush()
    log = (tmp_path / 'log.txt').read_text()
    assert 'skipped the classifier keys head.bias, head.weight, norm.bias, norm.weight' in log


def test_official_checkpoint_ema_weights_on_request(tmp_path):
    path = tmp_path / 'ckpt.pth'
    checkpoint = official_checkpoint(path)
    model = EfficientMod('xxs', init_cfg=dict(type='Pretrained', checkpoint=str(path),
                                              state_key='state_dict_ema'))
    model.init_weights()
    key = 'layers.2.blocks.6.attn.qkv.weight'
    assert torch.equal(model.state_dict()[key], checkpoint['state_dict_ema'][key])
    assert not torch.equal(model.state_dict()[key], checkpoint['state_dict'][key])


def test_checkpoint_of_another_arch_is_refused_naming_the_keys(tmp_path):
    path = tmp_path / 'ckpt.pth'
    official_checkpoint(path, arch='xxs')
    model = EfficientMod('xs', init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    with pytest.raises(ValueError) as error:
        model.init_weights()
    message = str(error.value)
    assert 'does not fit this EfficientMod backbone' in message and str(path) in message
    assert 'missing keys: layers.0.blocks.2.' in message  # xs has 3 blocks in stage 0
    assert '18 unexpected keys: layers.2.blocks.4.gamma_1' in message  # xxs: 6 blocks there
    assert 'layers.0.blocks.1.mlp.fc1.weight: checkpoint (192, 32) vs model (128, 32)' in message
