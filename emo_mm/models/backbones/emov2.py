"""EMOv2 backbone ("EMOv2: Pushing 5M Vision Model Frontier", arXiv 2412.06674)."""
from typing import Dict, List, Optional, Sequence, Union

import torch
from torch import nn

from ..layers.iirmb import emov2_stem, iiRMB
from .arguments import select_arch
from .staged import NUM_STAGES, StagedBackbone

STAGE_NORMS = ('bn', 'bn', 'ln', 'ln')
STAGE_ACTS = ('silu', 'silu', 'gelu', 'gelu')
DW_KERNEL = 5
STAGE_ATTENTION = (False, False, True, True)

# The authors' ImageNet-1K weights (their README's links; "KD": distilled, the † rows). The
# file names differ, so each has its own cache file (pretrained.cache_file_name). No 20M
# weights were released.
RELEASE_URL = 'https://github.com/zhangzjn/data/raw/main/emov2_pretrained_weights/{}'
PRETRAINED = {
    '1m': RELEASE_URL.format('EMOv2_1M_224.pth'),
    '1m_kd': RELEASE_URL.format('EMOv2_1M_224_KD.pth'),
    '2m': RELEASE_URL.format('EMOv2_2M_224.pth'),
    '2m_kd': RELEASE_URL.format('EMOv2_2M_224_KD.pth'),
    '5m': RELEASE_URL.format('EMOv2_5M_224.pth'),
    '5m_kd': RELEASE_URL.format('EMOv2_5M_224_KD.pth'),
    '5m_512_kd': RELEASE_URL.format('EMOv2_5M_512_KD.pth'),
}

ArchDict = Dict[str, Union[int, float, Sequence]]


class EMOv2(StagedBackbone):
    """EMOv2 backbone with multi-scale outputs.

    Input ``(N, 3, H, W)``; output: a tuple with the maps of the stages in ``out_indices``,
    stage ``i`` having stride ``2 ** (i + 1)`` and ``out_channels[i]`` channels
    (``stem, d1, d2, d3, d4``). Any ``H, W`` works: strided convolutions round up, attention
    windows pad (padded pixels are attended to, as in the authors' model). Stages after the
    last one in ``out_indices`` are not built (no unused parameters under DDP); their
    checkpoint keys are skipped when loading.

    Args:
        arch: ``'1m'``, ``'2m'``, ``'5m'``, ``'20m'`` or a dict with the fields of
            :attr:`arch_zoo` (``drop_path_rate`` optional).
        window_size: attention window side, an int or one per stage 1-4 (only stages 3-4
            attend); ``0`` means one window over the whole map. The authors use 7 for
            ImageNet and 10 in every detection and segmentation config.
        out_indices: stages to return, any subset of ``0..4``, returned in ascending order.
        frozen_stages: stages ``0..frozen_stages`` are kept in eval mode without gradients;
            ``-1`` freezes nothing; at most ``max(out_indices)``.
        norm_eval: keep every BatchNorm in eval mode while training (LayerNorms have no
            statistics).
        drop_path_rate: stochastic depth of the last block, spread linearly over all blocks;
            defaults to the arch's.
        norm_cfg: the BatchNorm layers' config (e.g. ``dict(type='SyncBN')``); ``eps``
            defaults to the authors' 1e-6.
        memory_format: ``'channels_last'``, ``'contiguous'`` or ``None`` (auto), as for
            :class:`~emo_mm.models.backbones.EMO`.
        init_cfg: e.g. ``dict(type='Pretrained', checkpoint=PRETRAINED['5m'])`` (a path or URL;
            optionally ``prefix``, ``state_key``). The authors' classification checkpoints load
            with their classifier keys skipped.
    """

    arch_zoo: Dict[str, ArchDict] = {
        '1m': dict(depths=(2, 2, 8, 3), embed_dims=(32, 48, 80, 180),
                   exp_ratios=(2.0, 2.5, 3.0, 3.5), dim_heads=(16, 16, 20, 20),
                   drop_path_rate=0.04036),
        '2m': dict(depths=(3, 3, 9, 3), embed_dims=(32, 48, 120, 200),
                   exp_ratios=(2.0, 2.5, 3.0, 3.5), dim_heads=(16, 16, 20, 20),
                   drop_path_rate=0.05),
        '5m': dict(depths=(3, 3, 9, 3), embed_dims=(48, 72, 160, 288),
                   exp_ratios=(2.0, 3.0, 4.0, 4.0), dim_heads=(16, 24, 32, 32),
                   drop_path_rate=0.05),
        '20m': dict(depths=(3, 3, 13, 3), embed_dims=(64, 128, 320, 448),
                    exp_ratios=(2.0, 3.0, 4.0, 4.0), dim_heads=(16, 32, 32, 32),
                    drop_path_rate=0.1),
    }
    _required_fields = ('depths', 'embed_dims', 'exp_ratios', 'dim_heads')

    def __init__(self,
                 arch: Union[str, ArchDict] = '5m',
                 window_size: Union[int, Sequence[int]] = 10,
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

        stem_channels = embed_dims[0] // 2
        self.out_channels = (stem_channels, *embed_dims)
        self.stage0 = emov2_stem(stem_channels, norm_cfg)
        # The rates run over every block of the whole model, built or not, so that a truncated
        # model's blocks keep the full model's rates.
        rates = torch.linspace(0, drop_path_rate, sum(depths)).tolist()
        in_channels = stem_channels
        for i, (depth, channels) in enumerate(zip(depths, embed_dims)):
            if i + 1 >= self.num_built_stages:
                break
            blocks = []
            for j in range(depth):
                first = j == 0  # down-samples: stride 2, double expansion, no attention/skips
                blocks.append(
                    iiRMB(in_channels, channels,
                          expansion=arch['exp_ratios'][i] * (2 if first else 1),
                          norm=STAGE_NORMS[i], act=STAGE_ACTS[i], dw_kernel_size=DW_KERNEL,
                          stride=2 if first else 1,
                          attention=STAGE_ATTENTION[i] and not first,
                          dim_head=arch['dim_heads'][i], window_size=window_sizes[i],
                          skip=not first, drop_path_rate=rates.pop(0), norm_cfg=norm_cfg))
                in_channels = channels
            self.add_module(f'stage{i + 1}', nn.ModuleList(blocks))
        self._finish_build()

    # ----------------------------------------------------------------- argument checking
    @classmethod
    def _parse_arch(cls, arch: Union[str, ArchDict]) -> ArchDict:
        arch = select_arch(arch, cls.arch_zoo, cls._required_fields, 'EMOv2')
        for field in cls._required_fields:
            if len(arch[field]) != NUM_STAGES - 1:
                raise ValueError(f'EMOv2 arch field {field!r} needs one value per stage 1-4, '
                                 f'got {arch[field]!r}')
        for stage, (width, dim_head, ratio) in enumerate(
                zip(arch['embed_dims'], arch['dim_heads'], arch['exp_ratios']), 1):
            if not STAGE_ATTENTION[stage - 1]:
                continue
            if width % dim_head:
                raise ValueError(f'stage{stage}: width {width} is not divisible by dim_head '
                                 f'{dim_head}, so it cannot be split into attention heads')
            if int(width * ratio) % (width // dim_head):
                raise ValueError(f'stage{stage}: value width int({width} * {ratio}) is not '
                                 f'divisible by its {width // dim_head} attention heads')
        return arch
