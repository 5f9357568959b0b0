"""EMOv2 backbone ("EMOv2: Pushing 5M Vision Model Frontier", arXiv 2412.06674)."""
from numbers import Integral
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
from mmengine.model import BaseModule
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from ..layers.iirmb import emov2_stem, iiRMB
from .arguments import check_frozen_stages, parse_out_indices, select_arch
from .pretrained import init_from_pretrained_cfg, load_pretrained

NUM_STAGES = 5  # stage0 (stem, stride 2) .. stage4 (stride 32)
STAGE_NORMS = ('bn', 'bn', 'ln', 'ln')
STAGE_ACTS = ('silu', 'silu', 'gelu', 'gelu')
DW_KERNEL = 5
STAGE_ATTENTION = (False, False, True, True)
# Keys of the authors' ImageNet classifier that a dense-prediction backbone does not have.
CLASSIFIER_PREFIXES = ('norm.', 'head.')

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


class EMOv2(BaseModule):
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
            ``-1`` freezes nothing.
        norm_eval: keep every BatchNorm in eval mode while training (LayerNorms have no
            statistics).
        drop_path_rate: stochastic depth of the last block, spread linearly over all blocks;
            defaults to the arch's.
        norm_cfg: the BatchNorm layers' config (e.g. ``dict(type='SyncBN')``); ``eps``
            defaults to the authors' 1e-6.
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
                 init_cfg: Optional[Union[dict, List[dict]]] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        arch = self._parse_arch(arch)
        depths, embed_dims = arch['depths'], arch['embed_dims']
        window_sizes = self._parse_window_size(window_size)
        self.out_indices = self._parse_out_indices(out_indices)
        self.num_built_stages = max(self.out_indices) + 1
        self.frozen_stages = check_frozen_stages(frozen_stages, NUM_STAGES - 1,
                                                 'stages 0..k stay frozen; -1: none')
        self.norm_eval = norm_eval
        self.deployed = False  # set by switch_to_deploy()
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
        # Channels-last weights, as in EMO: DDP's gradient buckets get the layout they expect
        # and no convolution converts its weight per call.
        self.to(memory_format=torch.channels_last)
        self._freeze_stages()

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
        """The built stages, stem first."""
        return [getattr(self, f'stage{i}') for i in range(self.num_built_stages)]

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError('EMOv2 expects images of shape (N, 3, H, W), got '
                             f'{tuple(x.shape)}')
        # Channels-last inside (1x1 convolutions are GEMMs, the channel LayerNorm and the
        # attention tokens are views); the outputs keep the memory format of the input.
        channels_last_input = x.is_contiguous(memory_format=torch.channels_last) and \
            not x.is_contiguous()
        out_format = torch.channels_last if channels_last_input else torch.contiguous_format
        x = x.contiguous(memory_format=torch.channels_last)
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

    def switch_to_deploy(self) -> 'EMOv2':
        """Converts to the inference form, in place; returns ``self``.

        Every BatchNorm is folded into the convolution next to it (with its running
        statistics), the layer scales into ``proj``, and the activations run in place. Outputs
        equal the eval-mode outputs of the default form up to float rounding. The result is
        inference-only (``train(True)`` raises) and its state_dict differs: load checkpoints
        before switching.
        """
        self.eval()
        for module in self.modules():
            if module is not self and hasattr(module, 'switch_to_deploy'):
                module.switch_to_deploy()
        self.deployed = True
        return self

    def train(self, mode: bool = True) -> 'EMOv2':
        if mode and self.deployed:
            raise RuntimeError('this EMOv2 was switched to the deploy (BatchNorm-folded, '
                               'inference-only) form and cannot be trained; build a new one')
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for module in self.modules():
                if isinstance(module, _BatchNorm):
                    module.eval()
        return self

    # ------------------------------------------------------------------ checkpoints
    @property
    def unbuilt_prefixes(self) -> Tuple[str, ...]:
        """Checkpoint key prefixes of the stages after ``max(out_indices)``, not built."""
        return tuple(f'stage{i}.' for i in range(self.num_built_stages, NUM_STAGES))

    def init_weights(self) -> None:
        if not init_from_pretrained_cfg(self, skip_prefixes=CLASSIFIER_PREFIXES,
                                        unbuilt_prefixes=self.unbuilt_prefixes):
            super().init_weights()

    def load_pretrained(self, checkpoint: str, prefix: Optional[str] = None,
                        state_key: Optional[str] = None) -> None:
        """Loads a checkpoint path or URL: the authors' flat state dict, their trainer's
        ``net`` / ``net_E`` (EMA) entries, or mmengine's ``state_dict`` / ``model``.

        The classifier's keys (``norm.*``, ``head.*``) and those of stages not built are skipped
        and logged; any other key that does not fit, or a missing one, is an error that names
        the keys, shapes and the file read (see
        :func:`~emo_mm.models.backbones.pretrained.load_pretrained`).
        """
        load_pretrained(self, checkpoint, prefix=prefix, state_key=state_key,
                        skip_prefixes=CLASSIFIER_PREFIXES,
                        unbuilt_prefixes=self.unbuilt_prefixes)
