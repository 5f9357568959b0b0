"""Only the stages that run are built: DDP with ``find_unused_parameters=False`` (mmengine's
default) trains every shipped config's structure and every ``out_indices`` of both backbones, and the
authors' full checkpoints still load into the shorter backbones."""
import itertools
import json
from pathlib import Path
from typing import Dict, List, Tuple

import pytest
import torch
import torch.multiprocessing as mp
from conftest import CONFIGS, REPO, free_port
from ddp_step_worker import ddp_worker
from mmengine.logging import MMLogger

from emo_mm import EMO
from emo_mm.models.backbones.efficientmod import EfficientMod
from emo_mm.testing.emo_reference import ReferenceEMO, randomize

# The smallest variants; every stage of every variant is built the same way.
BACKBONES = ((EMO, '1m', 5), (EfficientMod, 'xxs', 4))
IMAGE = 32  # the stride-32 stage still gets a 1x1 map


def all_out_indices(num_stages: int) -> List[Tuple[int, ...]]:
    """Every non-empty subset of the stages."""
    return [idx for r in range(1, num_stages + 1)
            for idx in itertools.combinations(range(num_stages), r)]


def shipped_configs() -> List[Path]:
    """Every config a user trains (not the ``_base_*`` / ``_recipe`` / ``_common`` parts)."""
    return sorted(p for p in CONFIGS.glob('*/*.py') if not p.name.startswith('_'))


# Keys whose numbers decide which modules a forward pass uses (stages returned, levels read).
STRUCTURAL_NUMBERS = ('out_indices', 'in_index', 'start_level', 'end_level', 'num_outs',
                      'frozen_stages', 'num_stages')


def model_structure(value, key: str = ''):
    """A model config with its sizes masked: module types, options and list lengths stay, and
    the numbers of :data:`STRUCTURAL_NUMBERS`; every other number (widths, depths, the arch,
    rates) becomes ``None``. Two configs of one structure use the same modules in a forward
    pass, so DDP without ``find_unused_parameters`` treats them alike."""
    if key in STRUCTURAL_NUMBERS:
        return value
    if key in ('arch', 'init_cfg'):
        return None
    if isinstance(value, dict):
        return {k: model_structure(v, k) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [model_structure(v) for v in value]
    if isinstance(value, (bool, str)) or value is None:
        return value
    return None


def ddp_groups() -> Dict[str, List[Path]]:
    """Shipped configs grouped by family and backbone (``configs/<family>/<backbone>_*``), the
    512 SSDLite, tiny and EfficientMod conv variants apart; the first of each group (its smallest
    variant) is the one the DDP test trains."""
    groups: Dict[str, List[Path]] = {}
    for path in shipped_configs():
        backbone, variant = path.stem.split('_', 1)
        kind = '_'.join(v for v in ('512', 'tiny', 'conv') if v in variant.split('_'))
        groups.setdefault(f'{path.parent.name}/{backbone}/{kind}', []).append(path)
    return {name: sorted(paths, key=lambda p: (len(p.stem), p.stem))
            for name, paths in groups.items()}


def test_every_config_has_the_structure_of_its_ddp_trained_sibling():
    """The DDP test trains one config per group; every other config of the group differs from it
    only in sizes (same module types, options, returned stages and levels)."""
    from mmengine.config import Config
    compared = 0
    for name, paths in ddp_groups().items():
        first = model_structure(Config.fromfile(str(paths[0])).model.to_dict())
        for path in paths[1:]:
            assert model_structure(Config.fromfile(str(path)).model.to_dict()) == first, \
                f'{path.relative_to(REPO)} has another structure than {paths[0].name}'
            compared += 1
    assert compared >= 30
    # What it masks, and what it keeps.
    one = dict(backbone=dict(type='EMO', arch='1m', out_indices=(1, 2, 3, 4)),
               neck=dict(in_channels=[48, 72, 160, 288], start_level=1))
    assert model_structure(one) == model_structure(
        dict(backbone=dict(type='EMO', arch='5m', out_indices=(1, 2, 3, 4)),
             neck=dict(in_channels=[32, 48, 80, 180], start_level=1)))
    for other in (dict(one, backbone=dict(one['backbone'], out_indices=(2, 3, 4))),
                  dict(one, neck=dict(one['neck'], start_level=2)),
                  dict(one, neck=dict(one['neck'], in_channels=[48, 72, 160]))):
        assert model_structure(other) != model_structure(one)


# ------------------------------------------------------------------------ fast checks
@pytest.mark.parametrize('backbone, arch, num_stages', BACKBONES,
                         ids=[b[0].__name__ for b in BACKBONES])
def test_every_trainable_parameter_gets_a_gradient(backbone, arch, num_stages):
    """After one backward, for every ``out_indices``: no trainable parameter lacks a gradient
    (DDP without ``find_unused_parameters`` would wait for it forever / raise)."""
    for out_indices in all_out_indices(num_stages):
        torch.manual_seed(0)
        model = backbone(arch, out_indices=out_indices).train()
        outs = model(torch.randn(2, 3, IMAGE, IMAGE))
        assert len(outs) == len(out_indices)
        sum(out.mean() for out in outs).backward()
        missing = [name for name, p in model.named_parameters()
                   if p.requires_grad and p.grad is None]
        assert not missing, f'{backbone.__name__} out_indices={out_indices}: {missing[:5]}'


def test_emo_builds_no_stage_after_the_last_output():
    model = EMO('1m', out_indices=(1, 2))
    assert [name for name, _ in model.named_children()] == ['stage0', 'stage1', 'stage2']
    assert model.unbuilt_prefixes == ('stage3.', 'stage4.')
    assert len(EMO('1m', out_indices=(4, )).stages) == 5


def test_efficientmod_builds_nothing_after_the_last_output():
    model = EfficientMod('xxs', out_indices=(0, 1))
    assert len(model.layers) == 2 and not hasattr(model.layers[1], 'downsample')
    assert hasattr(model.layers[0], 'downsample')
    assert model.unbuilt_prefixes == ('layers.1.downsample.', 'layers.2.', 'layers.3.')
    assert EfficientMod('xxs').unbuilt_prefixes == ()


def test_shorter_backbone_outputs_equal_the_full_ones():
    """Same weights, same outputs: dropping the later stages changes nothing before them."""
    for backbone, arch, num_stages in BACKBONES:
        full = backbone(arch, out_indices=range(num_stages)).eval()
        short = backbone(arch, out_indices=(0, 1)).eval()
        missing, unexpected = short.load_state_dict(full.state_dict(), strict=False)
        assert not missing and unexpected and all(
            k.startswith(short.unbuilt_prefixes) for k in unexpected)
        x = torch.randn(1, 3, 64, 64, dtype=torch.float64)
        with torch.no_grad():
            expected = full.double()(x)[:2]
            actual = short.double()(x)
        assert all(torch.equal(a, e) for a, e in zip(actual, expected))


@pytest.mark.parametrize('backbone, frozen, match', [
    (EMO, 3, r'frozen_stages must be an int in -1\.\.2 .*out_indices=\(1, 2\) builds stages '
             r'0\.\.2 only'),
    (EfficientMod, 4, r'frozen_stages must be an int in -1\.\.3 .*out_indices=\(1, 2\) '
                      r'builds stages 0\.\.2 only'),
])
def test_frozen_stages_must_be_built(backbone, frozen, match):
    with pytest.raises(ValueError, match=match):
        backbone(out_indices=(1, 2), frozen_stages=frozen)


def test_efficientmod_can_freeze_every_built_stage():
    model = EfficientMod('xxs', out_indices=(0, 1), frozen_stages=2).train()
    assert not any(p.requires_grad for p in model.parameters())


def test_authors_full_checkpoint_loads_into_a_shorter_emo(tmp_path):
    reference = ReferenceEMO('1m')
    randomize(reference, 0)
    state = dict(reference.state_dict())
    state.update({'head.weight': torch.randn(1000, 168), 'head.bias': torch.zeros(1000)})
    torch.save(state, tmp_path / 'net.pth')
    logger = MMLogger.get_instance('test_unused_stages_emo', log_file=str(tmp_path / 'log.txt'))
    model = EMO('1m', out_indices=(1, 2), init_cfg=dict(type='Pretrained',
                                                        checkpoint=str(tmp_path / 'net.pth')))
    model.init_weights()
    own = model.state_dict()
    assert own and all(torch.equal(v, state[k]) for k, v in own.items())
    assert set(state) - set(own) == {k for k in state if k.startswith(
        ('stage3.', 'stage4.', 'head.'))}
    for handler in logger.handlers:
        handler.flush()
    log = (tmp_path / 'log.txt').read_text()
    assert 'skipped the classifier keys head.bias, head.weight' in log
    assert 'skipped the keys of the stages not built (after the last of out_indices) ' \
           'stage3.' in log


def test_full_checkpoint_loads_into_a_shorter_efficientmod(tmp_path):
    full = EfficientMod('xxs')
    torch.save({'state_dict': full.state_dict()}, tmp_path / 'ckpt.pth')
    model = EfficientMod('xxs', out_indices=(0, 1),
                         init_cfg=dict(type='Pretrained', checkpoint=str(tmp_path / 'ckpt.pth')))
    model.init_weights()
    assert all(torch.equal(v, full.state_dict()[k]) for k, v in model.state_dict().items())


@pytest.mark.slow
def test_every_config_and_out_indices_trains_in_ddp_without_unused_parameters(tmp_path,
                                                                              monkeypatch):
    """One spawn of 2 CPU processes (gloo) runs them all: the smallest config of every group of
    :func:`ddp_groups` (the others have its structure, tested above; built without its
    checkpoint, two 64x64 images per process, one object / a random label map each) and every
    ``out_indices`` of EMO-1M and EfficientMod-xxs (32x32), two SGD steps each in mmengine's
    DDP wrapper with ``find_unused_parameters=False``."""
    monkeypatch.setenv('CUDA_VISIBLE_DEVICES', '')  # the spawned processes run on CPU
    jobs = [('config', str(paths[0].relative_to(REPO))) for paths in ddp_groups().values()]
    jobs += [('backbone', json.dumps([b.__name__, arch, idx, IMAGE]))
             for b, arch, n in BACKBONES for idx in all_out_indices(n)]
    mp.spawn(ddp_worker, args=(free_port(), jobs, str(tmp_path), str(REPO)), nprocs=2,
             join=True)
    for rank in (0, 1):
        results = json.loads((tmp_path / f'rank{rank}.json').read_text())
        assert len(results) == len(jobs)
        failed = {job: result for job, result in results.items() if result != 'ok'}
        assert not failed, f'rank {rank}: {failed}'
