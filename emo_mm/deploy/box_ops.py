"""Anchors and box decoding as mmdet computes them, traceable: shared by the single- and the
two-stage detection graphs."""
import math
from typing import Any, List

import torch
from torch import Tensor, nn

from .errors import DeployError


class DeltaDecoder(nn.Module):
    """mmdet's ``delta2bbox`` (``DeltaXYWHBBoxCoder``, no centre clamp), clipped to each
    image: ``priors`` and ``deltas`` ``(..., 4)``, ``limits`` broadcastable ``(..., 4)`` rows
    ``(w, h, w, h)`` of each box's image."""

    def __init__(self, coder: Any) -> None:
        super().__init__()
        self.register_buffer('means', torch.tensor(coder.means, dtype=torch.float),
                             persistent=False)
        self.register_buffer('stds', torch.tensor(coder.stds, dtype=torch.float),
                             persistent=False)
        self.clip_border = bool(coder.clip_border)
        self.max_ratio = abs(math.log(16 / 1000))  # delta2bbox's default wh_ratio_clip

    def forward(self, priors: Tensor, deltas: Tensor, limits: Tensor) -> Tensor:
        deltas = deltas * self.stds + self.means
        pxy = (priors[..., :2] + priors[..., 2:]) * 0.5
        pwh = priors[..., 2:] - priors[..., :2]
        gxy = pxy + pwh * deltas[..., :2]
        gwh = pwh * deltas[..., 2:].clamp(min=-self.max_ratio, max=self.max_ratio).exp()
        boxes = torch.cat([gxy - gwh * 0.5, gxy + gwh * 0.5], dim=-1)
        if self.clip_border:
            boxes = torch.minimum(boxes.clamp(min=0), limits)
        return boxes


def unsupported_prior_generator(generator: Any) -> List[str]:
    """What of a prior generator :class:`AnchorGrid` does not compute as mmdet does (empty:
    all of it). The grid takes the generator's own ``base_anchors`` (so every option that only
    shapes them, ``ratios``, ``scales``, ``octave_base_scale``, ``scales_per_octave``,
    ``base_sizes``, ``scale_major``, ``centers``, ``center_offset``, SSD's and the legacy
    generators' sizes, is computed as mmdet computes it) and shifts them by ``stride`` times
    each cell's index, as ``AnchorGenerator.single_level_grid_priors``; a generator that places
    its priors otherwise is named."""
    from mmdet.models.task_modules.prior_generators import AnchorGenerator
    kind = type(generator).__name__
    if not isinstance(generator, AnchorGenerator) or \
            not hasattr(generator, 'base_anchors'):
        return [f'prior generator {kind} (the graph shifts an AnchorGenerator\'s base_anchors '
                'over the feature map; point generators and others are not computed)']
    placed = [name for name in ('single_level_grid_priors', 'grid_priors')
              if getattr(type(generator), name) is not getattr(AnchorGenerator, name)]
    if placed:
        return [f'prior generator {kind} with its own {" and ".join(placed)} (the graph '
                'computes AnchorGenerator.single_level_grid_priors)']
    return []


class AnchorGrid(nn.Module):
    """mmdet's ``AnchorGenerator.single_level_grid_priors``: ``(H * W * A, 4)`` anchors of a
    level, ordered (row, column, anchor) as the head's outputs are flattened: the generator's
    ``base_anchors`` (whose centres already hold ``center_offset``) shifted by ``stride``
    times each cell's column and row."""

    def __init__(self, generator: Any) -> None:
        super().__init__()
        problems = unsupported_prior_generator(generator)
        if problems:
            raise DeployError('; '.join(problems) + ': not supported for ONNX export')
        self.strides = [tuple(map(float, s)) for s in generator.strides]
        for level, anchors in enumerate(generator.base_anchors):
            self.register_buffer(f'base{level}', anchors.float(), persistent=False)

    def forward(self, level: int, height: Tensor, width: Tensor) -> Tensor:
        stride_w, stride_h = self.strides[level]
        shift_x = torch.arange(width).float() * stride_w
        shift_y = torch.arange(height).float() * stride_h
        shifts = torch.stack([shift_x[None, :].expand(height, width),
                              shift_y[:, None].expand(height, width)], dim=-1).repeat(1, 1, 2)
        return (shifts[:, :, None, :] + getattr(self, f'base{level}')).reshape(-1, 4)
