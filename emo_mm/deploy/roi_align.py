"""ONNX ``RoiAlign`` as a traceable torch function, and mmdet's multi-level RoI extraction.

mmcv's ``RoIAlign`` exports to its own custom operator (or, without it, to an opset-10
``RoiAlign`` with a shifted copy of the boxes), so the exported two-stage detectors call
:func:`onnx_roi_align`: in eager mode (and while tracing, for the example outputs) it runs mmcv's
kernel, and the TorchScript exporter writes ONNX's opset-16 ``RoiAlign``, whose
``coordinate_transformation_mode`` says what mmcv's ``aligned`` does:

* ``aligned=True`` = ``half_pixel``: box corners shifted by -0.5 pixel, no minimum RoI size;
* ``aligned=False`` = ``output_half_pixel``: no shift, RoIs at least 1x1 feature pixel.

Both average the bilinear samples of each bin (``mode='avg'``); ``sampling_ratio=0`` takes
``ceil(roi size / output size)`` samples per bin side, as mmcv does.
"""
from typing import Sequence, Tuple

import torch
from torch import Tensor, nn

MIN_OPSET = 16  # RoiAlign with coordinate_transformation_mode


class _RoiAlign(torch.autograd.Function):

    @staticmethod
    def forward(ctx, features: Tensor, boxes: Tensor, batch_index: Tensor,
                output_size: Tuple[int, int], spatial_scale: float, sampling_ratio: int,
                aligned: bool) -> Tensor:
        from mmcv.ops import roi_align
        rois = torch.cat([batch_index[:, None].to(boxes.dtype), boxes], dim=1)
        return roi_align(features, rois, output_size, spatial_scale, sampling_ratio, 'avg',
                         aligned)

    @staticmethod
    def symbolic(g, features, boxes, batch_index, output_size, spatial_scale, sampling_ratio,
                 aligned):
        return g.op('RoiAlign', features, boxes, batch_index,
                    coordinate_transformation_mode_s='half_pixel' if aligned
                    else 'output_half_pixel',
                    mode_s='avg', output_height_i=output_size[0],
                    output_width_i=output_size[1], sampling_ratio_i=max(0, sampling_ratio),
                    spatial_scale_f=spatial_scale)


def onnx_roi_align(features: Tensor, boxes: Tensor, batch_index: Tensor,
                   output_size: Tuple[int, int], spatial_scale: float, sampling_ratio: int,
                   aligned: bool = True) -> Tensor:
    """mmcv's ``roi_align`` (average pooling), exported as ONNX ``RoiAlign`` (opset >= 16).

    Args:
        features: ``(N, C, H, W)`` feature map.
        boxes: ``(R, 4)`` boxes ``x1, y1, x2, y2`` in input pixels.
        batch_index: ``(R,)`` int64, the image of each box.
        output_size: ``(h, w)`` bins per RoI.
        spatial_scale: feature pixels per input pixel (1 / stride).
        sampling_ratio: samples per bin side, ``0``: adaptive.
        aligned: mmcv's ``aligned`` (see the module docstring).

    Returns:
        ``(R, C, h, w)`` RoI features.
    """
    return _RoiAlign.apply(features, boxes, batch_index.long(),
                           tuple(int(s) for s in output_size), float(spatial_scale),
                           int(sampling_ratio), bool(aligned))


class MultiLevelRoIAlign(nn.Module):
    """mmdet's ``SingleRoIExtractor`` with ``RoIAlign`` layers, traceable: each RoI is pooled
    from the FPN level of its size, ``floor(log2(sqrt(w h) / finest_scale + 1e-6))`` clamped
    to the levels (mmdet's ``map_roi_levels``).

    Input: the FPN maps (finest first; maps beyond the extractor's strides are ignored, as
    mmdet does), ``(R, 4)`` boxes and ``(R,)`` image indices. Output: ``(R, C, h, w)``.
    Each level pools only its own RoIs; the results are put back in the RoIs' order.
    """

    def __init__(self, extractor: nn.Module) -> None:
        super().__init__()
        layer = extractor.roi_layers[0]
        self.output_size = tuple(layer.output_size)
        self.sampling_ratio = int(layer.sampling_ratio)
        self.aligned = bool(layer.aligned)
        self.strides: Sequence[int] = list(extractor.featmap_strides)
        self.finest_scale = float(extractor.finest_scale)

    def levels(self, boxes: Tensor) -> Tensor:
        """``(R,)`` int64 level of each box (mmdet's ``map_roi_levels``)."""
        scale = torch.sqrt((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))
        level = torch.floor(torch.log2(scale / self.finest_scale + 1e-6))
        return level.clamp(min=0, max=len(self.strides) - 1).long()

    def forward(self, feats: Sequence[Tensor], boxes: Tensor, batch_index: Tensor) -> Tensor:
        if len(self.strides) == 1:
            return onnx_roi_align(feats[0], boxes, batch_index, self.output_size,
                                  1. / self.strides[0], self.sampling_ratio, self.aligned)
        level = self.levels(boxes)
        pooled, order = [], []
        for i, stride in enumerate(self.strides):
            index = (level == i).nonzero().squeeze(1)
            pooled.append(onnx_roi_align(feats[i], boxes[index], batch_index[index],
                                         self.output_size, 1. / stride, self.sampling_ratio,
                                         self.aligned))
            order.append(index)
        # Row j of the concatenation is RoI order[j]; argsort puts them back in RoI order.
        return torch.cat(pooled)[torch.cat(order).argsort()]
