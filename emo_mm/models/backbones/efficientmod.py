"""EfficientMod backbone (ICLR 2024, "Efficient Modulation for Vision Networks")."""
from numbers import Integral, Real
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
from mmengine.model import BaseModule
from torch import nn

from ..layers import AttentionBlock, ContextLayer, EfficientModBlock, PatchEmbed
from .arguments import (MEMORY_FORMATS, check_frozen_stages, parse_out_indices,
                        resolve_memory_format, select_arch)
from .pretrained import init_from_pretrained_cfg

NUM_STAGES = 4  # strides 4, 8, 16, 32

ArchDict = Dict[str, Union[float, Sequence]]
# The authors' classifier init, applied by ``init_weights()`` when no checkpoint is given (their
# ``isinstance(m, nn.Linear or nn.Conv2d)`` matches Linear only: convolutions keep PyTorch's).
FROM_SCRATCH = [
    dict(type='TruncNormal', layer='Linear', std=0.02, bias=0.),
    dict(type='Constant', layer='LayerNorm', val=1., bias=0.),
]


class EfficientMod(BaseModule):
    """EfficientMod backbone with multi-scale outputs.

    Input ``(N, 3, H, W)``; output: a tuple with the maps of the stages in ``out_indices``,
    stage ``i`` having stride ``2 ** (i + 2)`` and ``out_channels[i]`` channels: each stage's
    last block output before its downsampling, NCHW, without an extra norm (as the authors'
    detection and segmentation backbones). Any ``H, W`` works (strided convolutions round up).

    Stage ``i`` (``layers.{i}``) runs ``depths[i]`` EfficientMod blocks whose expansion
    alternates between ``mlp_ratios[0]`` and ``mlp_ratios[1]``, then ``attention_depths[i]``
    global self-attention blocks (8 heads of ``max(C // 8, 32)`` channels, MLP ratio
    ``att_ratios[i]``), then (stages 0-2) a 3x3 stride-2 convolution + LayerNorm.

    Args:
        arch: ``'xxs'``, ``'xs'``, ``'s'``, ``'s_conv'`` or a dict with the fields of
            :attr:`arch_zoo` (``drop_path_rate`` optional).
        out_indices: stages to return, any subset of ``0..3``, returned in ascending order.
            Only ``layers.0 .. layers.{m}``, ``m = max(out_indices)``, are built, and
            ``layers.{m}`` without its downsampling (what comes after the last output would
            never run, and DDP with ``find_unused_parameters=False`` fails on parameters
            without gradients); a checkpoint's keys of what is not built are skipped and logged.
        frozen_stages: ``-1`` freezes nothing, ``0`` the stem (``patch_embed``), ``k >= 1`` the
            stem and ``layers.0 .. layers.{k-1}`` (each with its downsampling): kept in eval
            mode without gradients; at most ``max(out_indices) + 1``.
        drop_path_rate: stochastic depth of the last block (linear from 0 over all blocks);
            defaults to the arch's.
        layer_scale_init_value: initial value of the EfficientMod blocks' ``gamma_1``.
        memory_format: ``'channels_last'`` or ``'contiguous'``: how the convolutions (stem,
            downsampling, depth-wise context) run on the ``(N, H, W, C)`` maps: on
            channels-last views with channels-last weights, or on contiguous NCHW copies (as the
            authors' model) with contiguous weights. ``None`` (auto): channels-last where no
            GPU is visible when the backbone is built (measured faster on CPU), contiguous
            where one is (not measured on a GPU yet, so the authors' layout).
        init_cfg: e.g. ``dict(type='Pretrained', checkpoint=PATH_OR_URL)``; optional ``prefix``
            (e.g. ``'backbone.'``) and ``state_key``: the authors' checkpoints are timm-style
            dicts, their non-EMA ``state_dict`` is read by default (as their detection code
            does), ``state_key='state_dict_ema'`` reads the EMA weights. The classifier's
            ``norm.*``/``head.*`` keys are skipped and logged. The default initialises as the
            authors' classifier does (Linear: truncated normal, std 0.02, bias 0; LayerNorm
            1/0; convolutions PyTorch's default); ``None`` keeps PyTorch's defaults.
    """

    arch_zoo: Dict[str, ArchDict] = {
        'xxs': dict(embed_dims=(32, 64, 128, 256), depths=(2, 2, 6, 2),
                    attention_depths=(0, 0, 1, 2), mlp_ratios=(1, 6), att_ratios=(4, 4, 4, 4),
                    drop_path_rate=0.),
        'xs': dict(embed_dims=(32, 64, 144, 288), depths=(3, 3, 4, 2),
                   attention_depths=(0, 0, 3, 3), mlp_ratios=(1, 4), att_ratios=(4, 4, 4, 4),
                   drop_path_rate=0.),
        's': dict(embed_dims=(32, 64, 144, 312), depths=(4, 4, 8, 4),
                  attention_depths=(0, 0, 4, 4), mlp_ratios=(1, 6), att_ratios=(4, 4, 4, 5),
                  drop_path_rate=0.02),
        's_conv': dict(embed_dims=(40, 80, 160, 344), depths=(4, 4, 12, 8),
                       attention_depths=(0, 0, 0, 0), mlp_ratios=(1, 6),
                       att_ratios=(4, 4, 4, 4), drop_path_rate=0.02),
    }
    _required_fields = ('embed_dims', 'depths', 'attention_depths', 'mlp_ratios', 'att_ratios')

    def __init__(self,
                 arch: Union[str, ArchDict] = 's',
                 out_indices: Sequence[int] = (0, 1, 2, 3),
                 frozen_stages: int = -1,
                 drop_path_rate: Optional[float] = None,
                 layer_scale_init_value: float = 1e-4,
                 memory_format: Optional[str] = None,
                 init_cfg: Optional[Union[dict, List[dict]]] = FROM_SCRATCH) -> None:
        super().__init__(init_cfg=init_cfg)
        arch = self._parse_arch(arch)
        self.out_indices = self._parse_out_indices(out_indices)
        self.num_built_stages = max(self.out_indices) + 1
        self.frozen_stages = check_frozen_stages(
            frozen_stages, self.num_built_stages,
            f'-1: none, 0: the stem, k: the stem and stages 0..k-1; out_indices='
            f'{self.out_indices} builds stages 0..{self.num_built_stages - 1} only')
        if drop_path_rate is None:
            drop_path_rate = arch.get('drop_path_rate', 0.)
        if not (isinstance(drop_path_rate, Real) and 0 <= drop_path_rate < 1):
            raise ValueError(f'drop_path_rate must be a number in [0, 1), got {drop_path_rate!r}')

        dims, depths, att_depths = arch['embed_dims'], arch['depths'], arch['attention_depths']
        self.out_channels = tuple(dims)
        self.patch_embed = PatchEmbed(3, dims[0], kernel_size=7, stride=4, padding=3)
        # Stochastic depth grows linearly over all blocks, EfficientMod and attention alike.
        rates = torch.linspace(0, drop_path_rate, sum(depths) + sum(att_depths)).tolist()
        self.layers = nn.ModuleList()
        for i in range(self.num_built_stages):  # later stages would never run
            layer = nn.Module()
            blocks: List[nn.Module] = [
                EfficientModBlock(dims[i], arch['mlp_ratios'][j % 2], rates.pop(0),
                                  layer_scale_init_value) for j in range(depths[i])
            ]
            blocks += [
                AttentionBlock(dims[i], arch['att_ratios'][i], drop_path_rate=rates.pop(0))
                for _ in range(att_depths[i])
            ]
            layer.blocks = nn.ModuleList(blocks)
            if i < self.num_built_stages - 1:
                layer.downsample = PatchEmbed(dims[i], dims[i + 1], kernel_size=3, stride=2,
                                              padding=1)
            self.layers.append(layer)
        self.memory_format = resolve_memory_format(memory_format, 'EfficientMod')
        channels_last = self.memory_format == 'channels_last'
        for module in self.modules():
            if isinstance(module, (PatchEmbed, ContextLayer)):
                module.channels_last = channels_last
        # Weights in the activations' layout: their gradients come out in the layout DDP's
        # gradient buckets expect, and no convolution converts its weight per call.
        self.to(memory_format=MEMORY_FORMATS[self.memory_format])
        self._freeze_stages()

    # ----------------------------------------------------------------- argument checking
    @classmethod
    def _parse_arch(cls, arch: Union[str, ArchDict]) -> ArchDict:
        selected = select_arch(arch, cls.arch_zoo, cls._required_fields, 'EfficientMod')
        if isinstance(arch, str):
            return selected  # the variant table is right by construction
        unknown = sorted(set(arch) - set(cls._required_fields) - {'drop_path_rate'})
        if unknown:
            raise ValueError(f'EfficientMod arch dict has unknown fields {unknown}; valid: '
                             f'{cls._required_fields} and drop_path_rate')

        def ints(field: str, length: int, minimum: int) -> None:
            values = arch[field]
            if not (isinstance(values, Sequence) and len(values) == length and all(
                    isinstance(v, Integral) and not isinstance(v, bool) and v >= minimum
                    for v in values)):
                raise ValueError(f'EfficientMod arch field {field!r} needs {length} ints >= '
                                 f'{minimum}, got {values!r}')

        ints('embed_dims', NUM_STAGES, 1)
        ints('depths', NUM_STAGES, 1)
        ints('attention_depths', NUM_STAGES, 0)
        ints('mlp_ratios', 2, 1)
        ratios = arch['att_ratios']
        if not (isinstance(ratios, Sequence) and len(ratios) == NUM_STAGES
                and all(isinstance(r, Real) and r > 0 for r in ratios)):
            raise ValueError("EfficientMod arch field 'att_ratios' needs 4 positive numbers "
                             f'(the attention MLP ratio of each stage), got {ratios!r}')
        return arch

    @staticmethod
    def _parse_out_indices(out_indices: Sequence[int]) -> Tuple[int, ...]:
        return parse_out_indices(out_indices, NUM_STAGES, 'strides 4, 8, 16, 32')

    # ----------------------------------------------------------------------- forward
    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError('EfficientMod expects images of shape (N, 3, H, W), got '
                             f'{tuple(x.shape)}')
        # Channels-last inside: (N, H, W, C) maps between the layers, as the authors' model.
        # The outputs are NCHW, in the memory format of the input.
        channels_last_input = x.is_contiguous(memory_format=torch.channels_last) and \
            not x.is_contiguous()
        out_format = torch.channels_last if channels_last_input else torch.contiguous_format
        # The stem convolution gets the image in its layout (memory_format).
        x = x.contiguous(memory_format=MEMORY_FORMATS[self.memory_format])
        x = self.patch_embed(x.permute(0, 2, 3, 1))
        outs = []
        for i, layer in enumerate(self.layers):
            for block in layer.blocks:
                x = block(x)
            if i in self.out_indices:
                outs.append(x.permute(0, 3, 1, 2).contiguous(memory_format=out_format))
            if hasattr(layer, 'downsample'):
                x = layer.downsample(x)
        return tuple(outs)

    # ---------------------------------------------------------------- train behaviour
    def _frozen_modules(self) -> List[nn.Module]:
        if self.frozen_stages < 0:
            return []
        return [self.patch_embed, *self.layers[:self.frozen_stages]]

    def _freeze_stages(self) -> None:
        for module in self._frozen_modules():
            module.eval()
            for param in module.parameters():
                param.requires_grad = False

    def train(self, mode: bool = True) -> 'EfficientMod':
        super().train(mode)
        self._freeze_stages()
        return self

    # ------------------------------------------------------------------ checkpoints
    @property
    def unbuilt_prefixes(self) -> Tuple[str, ...]:
        """Checkpoint key prefixes of what comes after the last output, not built."""
        last = self.num_built_stages - 1
        later = tuple(f'layers.{i}.' for i in range(last + 1, NUM_STAGES))
        return ((f'layers.{last}.downsample.', ) if last < NUM_STAGES - 1 else ()) + later

    def init_weights(self) -> None:
        if not init_from_pretrained_cfg(self, unbuilt_prefixes=self.unbuilt_prefixes):
            super().init_weights()
