"""Anchors and box decoding as mmdet computes them, traceable: shared by the single- and the
two-stage detection graphs."""
import math
from typing import Any

import torch
from torch import Tensor, nn


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


class AnchorGrid(nn.Module):
    """mmdet's ``AnchorGenerator.single_level_grid_priors``: ``(H * W * A, 4)`` anchors of a
    level, ordered (row, column, anchor) as the head's outputs are flattened."""

    def __init__(self, generator: Any) -> None:
        super().__init__()
        self.strides = [tuple(map(float, s)) for s in generator.strides]
        self.center_offset = float(generator.center_offset)
        for level, anchors in enumerate(generator.base_anchors):
            self.register_buffer(f'base{level}', anchors.float(), persistent=False)

    def forward(self, level: int, height: Tensor, width: Tensor) -> Tensor:
        stride_w, stride_h = self.strides[level]
        shift_x = (torch.arange(width).float() + self.center_offset) * stride_w
        shift_y = (torch.arange(height).float() + self.center_offset) * stride_h
        shifts = torch.stack([shift_x[None, :].expand(height, width),
                              shift_y[:, None].expand(height, width)], dim=-1).repeat(1, 1, 2)
        return (shifts[:, :, None, :] + getattr(self, f'base{level}')).reshape(-1, 4)
