"""EMO backbone (ICCV 2023, "Rethinking Mobile Block for Efficient Attention-based Models")."""
from typing import Dict, List, Optional, Sequence, Union

import torch
from torch import nn

from ..layers import iRMB, Stem
from .arguments import select_arch
from .staged import NUM_STAGES, StagedBackbone

STAGE_NORMS = ('bn', 'bn', 'ln', 'ln')
STAGE_ACTS = ('silu', 'silu', 'gelu', 'gelu')
STAGE_DW_KERNELS = (3, 3, 5, 5)
STAGE_ATTENTION = (False, False, True, True)

ArchDict = Dict[str, Union[int, float, Sequence]]


class EMO(StagedBackbone):
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
        self._set_outputs(out_indices, frozen_stages, norm_eval, memory_format)
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
        self._finish_build()

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
