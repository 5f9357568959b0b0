"""EMO backbone (ICCV 2023, "Rethinking Mobile Block for Efficient Attention-based Models")."""
from numbers import Integral
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
from mmengine.model import BaseModule
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from ..layers import iRMB, Stem
from .arguments import (MEMORY_FORMATS, check_frozen_stages, parse_out_indices,
                        resolve_memory_format, select_arch)
from .pretrained import init_from_pretrained_cfg, load_pretrained

NUM_STAGES = 5  # stage0 (stem, stride 2) .. stage4 (stride 32)
STAGE_NORMS = ('bn', 'bn', 'ln', 'ln')
STAGE_ACTS = ('silu', 'silu', 'gelu', 'gelu')
STAGE_DW_KERNELS = (3, 3, 5, 5)
STAGE_ATTENTION = (False, False, True, True)
# Keys of the authors' ImageNet classifier that a dense-prediction backbone does not have.
CLASSIFIER_PREFIXES = ('norm.', 'head.')

ArchDict = Dict[str, Union[int, float, Sequence]]


class EMO(BaseModule):
    """EMO backbone with multi-scale outputs.

    Input ``(N, 3, H, W)``; output: a tuple with the maps of the stages in ``out_indices``,
    stage ``i`` having stride ``2 ** (i + 1)`` and ``out_channels[i]`` channels
    (``stem, d1, d2, d3, d4``). Any ``H, W`` works: strided convolutions round up, attention
    windows pad.

    Args:
        arch: ``'1m'``, ``'2m'``, ``'5m'``, ``'6m'`` or a dict with the fields of
            :attr:`arch_zoo` (``drop_path_rate`` optional).
        window_size: attention window side, an int or one per stage 1-4 (only stages 3-4 attend);
            ``0`` means global attention over the whole map. The authors use 7 for
            classification, 7/10 (1M-2M/5M) for detection, 7/16 for segmentation.
        out_indices: stages to return, any subset of ``0..4``, returned in ascending order.
            Only stages ``0..max(out_indices)`` are built (later ones would never run, and
            DDP with ``find_unused_parameters=False`` fails on parameters without gradients);
            a checkpoint's keys of the stages not built are skipped and logged.
        frozen_stages: stages ``0..frozen_stages`` are kept in eval mode without gradients;
            ``-1`` freezes nothing; at most ``max(out_indices)``.
        norm_eval: keep every BatchNorm in eval mode while training.
        drop_path_rate: stochastic depth of the last block; defaults to the arch's.
        norm_cfg: the BatchNorm layers' config (e.g. ``dict(type='SyncBN')``); ``eps`` defaults
            to the authors' 1e-6.
        memory_format: ``'channels_last'`` or ``'contiguous'``: the layout of the
            convolution weights and of the maps between the blocks (inputs are converted once,
            outputs come back in the input's). ``None`` (auto): channels-last where no GPU is
            visible when the backbone is built (measured faster on CPU: 1x1 convolutions
            become plain GEMMs, the channel LayerNorm and the attention tokens views),
            contiguous where one is (cuDNN's depth-wise NHWC kernels may be slower; not
            measured on a GPU yet, so PyTorch's default layout). Weights and activations share
            the format, so DDP's gradient buckets get gradients in their own layout.
        init_cfg: e.g. ``dict(type='Pretrained', checkpoint='.../net.pth')`` (a path or URL;
            optionally ``prefix``, ``state_key``). The authors' classification checkpoints load
            with their classifier keys skipped.
    """

    arch_zoo: Dict[str, ArchDict] = {
        '1m': dict(depths=(2, 2, 8, 3), stem_dim=24, embed_dims=(32, 48, 80, 168),
                   exp_ratios=(2.0, 2.5, 3.0, 3.5), dim_heads=(16, 16, 20, 21),
                   drop_path_rate=0.04036),
        '2m': dict(depths=(3, 3, 9, 3), stem_dim=24, embed_dims=(32, 48, 120, 200),
                   exp_ratios=(2.0, 2.5, 3.0, 3.5), dim_heads=(16, 16, 20, 20),
                   drop_path_rate=0.05),
        '5m': dict(depths=(3, 3, 9, 3), stem_dim=24, embed_dims=(48, 72, 160, 288),
                   exp_ratios=(2.0, 3.0, 4.0, 4.0), dim_heads=(24, 24, 32, 32),
                   drop_path_rate=0.05),
        '6m': dict(depths=(3, 3, 9, 3), stem_dim=24, embed_dims=(48, 72, 160, 320),
                   exp_ratios=(2.0, 3.0, 4.0, 5.0), dim_heads=(16, 24, 20, 32),
                   drop_path_rate=0.05),
    }
    _required_fields = ('depths', 'stem_dim', 'embed_dims', 'exp_ratios', 'dim_heads')

    def __init__(self,
                 arch: Union[str, ArchDict] = '5m',
                 window_size: Union[int, Sequence[int]] = 7,
                 out_indices: Sequence[int] = (1, 2, 3, 4),
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 drop_path_rate: Optional[float] = None,
                 norm_cfg: dict = dict(type='BN'),
                 memory_format: Optional[str] = None,
                 init_cfg: Optional[Union[dict, List[dict]]] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        arch = self._parse_arch(arch)
        depths, embed_dims = arch['depths'], arch['embed_dims']
        window_sizes = self._parse_window_size(window_size)
        self.out_indices = self._parse_out_indices(out_indices)
        self.num_built_stages = max(self.out_indices) + 1
        self.frozen_stages = check_frozen_stages(
            frozen_stages, self.num_built_stages - 1,
            f'stages 0..k stay frozen; -1: none; out_indices={self.out_indices} builds stages '
            f'0..{self.num_built_stages - 1} only')
        self.norm_eval = norm_eval
        self.memory_format = resolve_memory_format(memory_format, 'EMO')
        self.deployed = False  # set by switch_to_deploy()
        if drop_path_rate is None:
            drop_path_rate = arch.get('drop_path_rate', 0.)
        # The authors' BatchNorm eps is 1e-6, also when a config swaps BN for SyncBN.
        norm_cfg = {'eps': 1e-6, **norm_cfg}

        self.out_channels = (arch['stem_dim'], *embed_dims)
        self.stage0 = nn.ModuleList([
            Stem(3, arch['stem_dim'], norm_cfg),
            iRMB(arch['stem_dim'], arch['stem_dim'], expansion=1.0, norm=None, act=STAGE_ACTS[0],
                 dw_kernel_size=STAGE_DW_KERNELS[0], v_proj=False, se=True, skip=False,
                 norm_cfg=norm_cfg),
        ])
        rates = torch.linspace(0, drop_path_rate, sum(depths)).tolist()
        in_channels = arch['stem_dim']
        for i, (depth, channels) in enumerate(zip(depths, embed_dims)):
            if i + 1 >= self.num_built_stages:
                break  # the stages after max(out_indices) would never run
            blocks = []
            for j in range(depth):
                first = j == 0  # down-samples: stride 2, double expansion, no attention/skips
                blocks.append(
                    iRMB(in_channels, channels,
                         expansion=arch['exp_ratios'][i] * (2 if first else 1),
                         norm=STAGE_NORMS[i], act=STAGE_ACTS[i],
                         dw_kernel_size=STAGE_DW_KERNELS[i], stride=2 if first else 1,
                         attention=STAGE_ATTENTION[i] and not first,
                         dim_head=arch['dim_heads'][i], window_size=window_sizes[i],
                         skip=not first, drop_path_rate=rates.pop(0), norm_cfg=norm_cfg))
                in_channels = channels
            self.add_module(f'stage{i + 1}', nn.ModuleList(blocks))
        # The convolution weights have the activations' layout: their gradients then come out
        # in the layout DDP's gradient buckets expect (no "grad strides do not match bucket
        # view strides" copies), and no convolution converts its weight per call.
        self.to(memory_format=MEMORY_FORMATS[self.memory_format])
        self._freeze_stages()

    # ----------------------------------------------------------------- argument checking
    @classmethod
    def _parse_arch(cls, arch: Union[str, ArchDict]) -> ArchDict:
        arch = select_arch(arch, cls.arch_zoo, cls._required_fields, 'EMO')
        for field in ('depths', 'embed_dims', 'exp_ratios', 'dim_heads'):
            if len(arch[field]) != NUM_STAGES - 1:
                raise ValueError(f'EMO arch field {field!r} needs one value per stage 1-4, '
                                 f'got {arch[field]!r}')
        for stage, (width, dim_head) in enumerate(zip(arch['embed_dims'], arch['dim_heads']), 1):
            if STAGE_ATTENTION[stage - 1] and width % dim_head:
                raise ValueError(f'stage{stage}: width {width} is not divisible by dim_head '
                                 f'{dim_head}, so it cannot be split into attention heads')
        return arch

    @staticmethod
    def _parse_window_size(window_size: Union[int, Sequence[int]]) -> Tuple[int, ...]:
        if isinstance(window_size, Integral):
            sizes = (window_size, ) * (NUM_STAGES - 1)
        else:
            sizes = tuple(window_size) if isinstance(window_size, Sequence) else ()
        if len(sizes) != NUM_STAGES - 1 or not all(
                isinstance(s, Integral) and not isinstance(s, bool) and s >= 0 for s in sizes):
            raise ValueError('window_size must be a non-negative int (0 = one window over '
                             'the whole map) or 4 of them, one per stage 1-4; '
                             f'got {window_size!r}')
        return sizes

    @staticmethod
    def _parse_out_indices(out_indices: Sequence[int]) -> Tuple[int, ...]:
        return parse_out_indices(out_indices, NUM_STAGES,
                                 '0 = stem, stride 2; 4 = last stage, stride 32')

    # ----------------------------------------------------------------------- forward
    @property
    def stages(self) -> List[nn.ModuleList]:
        """The built stages, ``stage0 .. stage{max(out_indices)}``."""
        return [getattr(self, f'stage{i}') for i in range(self.num_built_stages)]

    @property
    def unbuilt_prefixes(self) -> Tuple[str, ...]:
        """Checkpoint key prefixes of the stages after ``max(out_indices)``, not built."""
        return tuple(f'stage{i}.' for i in range(self.num_built_stages, NUM_STAGES))

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError('EMO expects images of shape (N, 3, H, W), got '
                             f'{tuple(x.shape)}')
        # Inside, the maps have the weights' layout (memory_format); the outputs keep the
        # memory format of the input.
        channels_last_input = x.is_contiguous(memory_format=torch.channels_last) and \
            not x.is_contiguous()
        out_format = torch.channels_last if channels_last_input else torch.contiguous_format
        x = x.contiguous(memory_format=MEMORY_FORMATS[self.memory_format])
        outs = []
        for i, stage in enumerate(self.stages):
            for block in stage:
                x = block(x)
            if i in self.out_indices:
                outs.append(x.contiguous(memory_format=out_format))
        return tuple(outs)

    # ---------------------------------------------------------------- train behaviour
    def _freeze_stages(self) -> None:
        for stage in self.stages[:self.frozen_stages + 1]:
            stage.eval()
            for param in stage.parameters():
                param.requires_grad = False

    def switch_to_deploy(self) -> 'EMO':
        """Converts to the inference form, in place; returns ``self``.

        Every BatchNorm is folded into the convolution next to it (with its running
        statistics) and the activations run in place. Outputs equal the eval-mode outputs of
        the default form up to float rounding. The result is inference-only: it has no
        BatchNorm buffers left (its state_dict and module-hook FLOP counts differ) and
        ``train(True)`` raises. Load checkpoints before switching.
        """
        self.eval()
        for module in self.modules():
            if module is not self and hasattr(module, 'switch_to_deploy'):
                module.switch_to_deploy()
        self.deployed = True
        return self

    def train(self, mode: bool = True) -> 'EMO':
        if mode and self.deployed:
            raise RuntimeError('this EMO was switched to the deploy (BatchNorm-folded, '
                               'inference-only) form and cannot be trained; build a new one')
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for module in self.modules():
                if isinstance(module, _BatchNorm):
                    module.eval()
        return self

    # ------------------------------------------------------------------ checkpoints
    def init_weights(self) -> None:
        if not init_from_pretrained_cfg(self, skip_prefixes=CLASSIFIER_PREFIXES,
                                        unbuilt_prefixes=self.unbuilt_prefixes):
            super().init_weights()

    def load_pretrained(self, checkpoint: str, prefix: Optional[str] = None) -> None:
        """Loads a checkpoint path or URL in the authors' flat format (or mmengine's).

        The classifier's keys (``norm.*``, ``head.*``) and those of the stages not built are
        skipped and logged; any other key that does not fit, or a missing one, is an error that
        names the keys, shapes and the file read
        (see :func:`~emo_mm.models.backbones.pretrained.load_pretrained`).
        """
        load_pretrained(self, checkpoint, prefix=prefix, skip_prefixes=CLASSIFIER_PREFIXES,
                        unbuilt_prefixes=self.unbuilt_prefixes)
