"""The modules that are traced into ``.onnx`` files: a model plus its inference post-processing.

Both take the config's preprocessed input, a normalised float32 ``(N, 3, H, W)`` batch (see
:mod:`emo_mm.deploy.metadata`), of any batch size and any height and width.

* :class:`DetectionGraph` (single-stage anchor detectors: SSD/SSDLite, RetinaNet): head
  outputs -> per-level top ``nms_pre`` (anchor, class) scores -> box decoding -> ONNX
  ``NonMaxSuppression`` per class -> the best ``max_per_img`` per image, as mmdet's
  ``BaseDenseHead.predict_by_feat`` does with the config's ``test_cfg``. Outputs ``boxes``
  ``(M, 4)`` (input pixels, clipped to the input), ``scores`` ``(M,)``, ``labels`` ``(M,)`` and
  ``batch_index`` ``(M,)``, grouped by image, each image's by descending score.
* :class:`SegmentationGraph` (mmseg ``EncoderDecoder``): decode head logits resized to the
  input size, ``seg_logits`` ``(N, C, H, W)``, and their argmax ``seg_pred`` ``(N, H, W)``.
"""
import math
from typing import Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .nms import onnx_nms


def _size(x: Tensor, dim: int) -> Tensor:
    """``x.shape[dim]`` as a 0-d int64 tensor, so that a trace keeps it symbolic."""
    return torch._shape_as_tensor(x)[dim]


class DetectionGraph(nn.Module):
    """A single-stage anchor detector with its post-processing; see the module docstring."""

    def __init__(self, detector: nn.Module) -> None:
        super().__init__()
        head = detector.bbox_head
        self.detector = detector
        self.num_classes = head.num_classes
        self.use_sigmoid = bool(head.use_sigmoid_cls)
        self.cls_out_channels = head.cls_out_channels
        cfg = head.test_cfg
        self.nms_pre = int(cfg.get('nms_pre', -1))
        self.score_thr = float(cfg.get('score_thr', 0.))
        self.min_bbox_size = float(cfg.get('min_bbox_size', -1))
        self.iou_threshold = float(cfg['nms']['iou_threshold'])
        self.max_per_img = int(cfg.get('max_per_img', 100))
        generator = head.prior_generator
        self.strides = [tuple(map(float, s)) for s in generator.strides]
        self.center_offset = float(generator.center_offset)
        for level, anchors in enumerate(generator.base_anchors):
            self.register_buffer(f'base_anchors{level}', anchors.float(), persistent=False)
        coder = head.bbox_coder
        self.register_buffer('means', torch.tensor(coder.means, dtype=torch.float),
                             persistent=False)
        self.register_buffer('stds', torch.tensor(coder.stds, dtype=torch.float),
                             persistent=False)
        self.clip_border = bool(coder.clip_border)
        self.max_ratio = abs(math.log(16 / 1000))  # delta2bbox's default wh_ratio_clip

    def anchors(self, level: int, height: Tensor, width: Tensor) -> Tensor:
        """``(height * width * A, 4)`` anchors of a level, ordered (row, column, anchor)."""
        stride_w, stride_h = self.strides[level]
        shift_x = (torch.arange(width).float() + self.center_offset) * stride_w
        shift_y = (torch.arange(height).float() + self.center_offset) * stride_h
        shifts = torch.stack([shift_x[None, :].expand(height, width),
                              shift_y[:, None].expand(height, width)], dim=-1).repeat(1, 1, 2)
        base = getattr(self, f'base_anchors{level}')
        return (shifts[:, :, None, :] + base).reshape(-1, 4)

    def decode(self, priors: Tensor, deltas: Tensor, height: Tensor, width: Tensor) -> Tensor:
        """mmdet's ``delta2bbox`` (``DeltaXYWHBBoxCoder``), clipped to the input."""
        deltas = deltas * self.stds + self.means
        pxy = (priors[..., :2] + priors[..., 2:]) * 0.5
        pwh = priors[..., 2:] - priors[..., :2]
        gxy = pxy + pwh * deltas[..., :2]
        gwh = pwh * deltas[..., 2:].clamp(min=-self.max_ratio, max=self.max_ratio).exp()
        boxes = torch.cat([gxy - gwh * 0.5, gxy + gwh * 0.5], dim=-1)
        if self.clip_border:
            limits = torch.stack([width, height, width, height]).float()
            boxes = torch.minimum(boxes.clamp(min=0), limits)
        return boxes

    def forward(self, inputs: Tensor) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        batch, height, width = _size(inputs, 0), _size(inputs, 2), _size(inputs, 3)
        cls_scores, bbox_preds = self.detector.bbox_head(self.detector.extract_feat(inputs))
        mlvl_scores, mlvl_labels, mlvl_priors, mlvl_deltas = [], [], [], []
        for level, (cls_score, bbox_pred) in enumerate(zip(cls_scores, bbox_preds)):
            n = cls_score.shape[0]
            priors = self.anchors(level, _size(cls_score, 2), _size(cls_score, 3))
            logits = cls_score.permute(0, 2, 3, 1).reshape(n, -1, self.cls_out_channels)
            # SSD: softmax with the background last; RetinaNet: sigmoid.
            scores = logits.sigmoid() if self.use_sigmoid else logits.softmax(-1)[..., :-1]
            scores = scores.reshape(n, -1)  # (N, anchors * classes)
            deltas = bbox_pred.permute(0, 2, 3, 1).reshape(n, -1, 4)
            if self.nms_pre > 0:  # the best nms_pre (anchor, class) pairs of the level
                k = torch.clamp(_size(scores, 1), max=self.nms_pre)
                scores, index = scores.topk(k, dim=1)
            else:
                index = torch.arange(_size(scores, 1))[None].expand(n, -1)
            anchor_index = torch.div(index, self.num_classes, rounding_mode='floor')
            mlvl_scores.append(scores)
            mlvl_labels.append(index % self.num_classes)
            mlvl_priors.append(priors[anchor_index])
            mlvl_deltas.append(deltas.gather(1, anchor_index[..., None].expand(-1, -1, 4)))
        scores = torch.cat(mlvl_scores, 1)  # (N, K)
        labels = torch.cat(mlvl_labels, 1)
        boxes = self.decode(torch.cat(mlvl_priors, 1), torch.cat(mlvl_deltas, 1), height, width)
        if self.min_bbox_size >= 0:
            wh = boxes[..., 2:] - boxes[..., :2]
            scores = scores * ((wh > self.min_bbox_size).all(-1)).float()
        # One score row per class (a pair scores only in its own class) for per-class NMS.
        one_hot = (labels[:, None, :] == torch.arange(self.num_classes)[None, :, None]).float()
        class_scores = one_hot * scores[:, None, :]  # (N, C, K)
        keep = onnx_nms(boxes, class_scores, self.max_per_img, self.iou_threshold,
                        self.score_thr)
        image, label, box = keep[:, 0], keep[:, 1], keep[:, 2]
        kept_scores = class_scores[image, label, box]
        # Sort by image, then by descending score; keep each image's best max_per_img.
        key = image.double() * 2 - kept_scores.double()
        order = key.topk(_size(key, 0), largest=False).indices
        image, label, box, kept_scores = image[order], label[order], box[order], kept_scores[order]
        counts = (image[:, None] == torch.arange(batch)[None, :]).long().sum(0)
        first = torch.cumsum(counts, 0) - counts
        rank = torch.arange(_size(image, 0)) - first[image]
        top = (rank < self.max_per_img).nonzero().squeeze(1)
        image, box = image[top], box[top]
        return boxes[image, box], kept_scores[top], label[top], image


class TraceableAdaptiveAvgPool2d(nn.Module):
    """``nn.AdaptiveAvgPool2d`` as two pooling matrices built from the input's size.

    The exporter writes adaptive pooling to a fixed output size as an ``AveragePool`` whose
    kernel is computed from the traced input size; this form keeps height and width symbolic.
    Bin ``i`` of ``s`` over ``n`` pixels covers ``[floor(i n / s), ceil((i + 1) n / s))``,
    as in torch.
    """

    def __init__(self, output_size: Tuple[int, int]) -> None:
        super().__init__()
        self.output_size = output_size

    @staticmethod
    def pooling_matrix(bins: int, length: Tensor, dtype: torch.dtype) -> Tensor:
        """``(bins, length)``: row ``i`` averages the pixels of bin ``i``."""
        i = torch.arange(bins)
        start = torch.div(i * length, bins, rounding_mode='floor')
        end = torch.div((i + 1) * length + bins - 1, bins, rounding_mode='floor')
        pixel = torch.arange(length)[None, :]
        inside = ((pixel >= start[:, None]) & (pixel < end[:, None])).to(dtype)
        return inside / (end - start)[:, None].to(dtype)

    def forward(self, x: Tensor) -> Tensor:
        rows = self.pooling_matrix(self.output_size[0], _size(x, 2), x.dtype)
        cols = self.pooling_matrix(self.output_size[1], _size(x, 3), x.dtype)
        return rows @ x @ cols.t()


def make_pooling_traceable(model: nn.Module) -> None:
    """Replaces every ``nn.AdaptiveAvgPool2d`` with an output other than 1x1 (PSPNet's
    pyramid) by :class:`TraceableAdaptiveAvgPool2d`, in place."""
    for module in list(model.modules()):
        for name, child in module.named_children():
            if isinstance(child, nn.AdaptiveAvgPool2d):
                size = child.output_size
                size = (size, size) if isinstance(size, int) else tuple(size)
                if None not in size and size != (1, 1):
                    setattr(module, name, TraceableAdaptiveAvgPool2d(size))


class TraceableUpsample(nn.Module):
    """mmseg's ``Upsample`` by a scale factor, its output size ``int(side * scale_factor)``
    computed in the graph (mmseg computes it in Python, which a trace freezes to the traced
    input's size: Semantic FPN's head then ran only at that size)."""

    def __init__(self, scale_factor: float, mode: str, align_corners) -> None:
        super().__init__()
        self.scale_factor, self.mode, self.align_corners = scale_factor, mode, align_corners

    def forward(self, x: Tensor) -> Tensor:
        size = [(_size(x, dim).float() * self.scale_factor).floor().long() for dim in (2, 3)]
        return F.interpolate(x, size=size, mode=self.mode, align_corners=self.align_corners)


def make_upsampling_traceable(model: nn.Module) -> None:
    """Replaces every mmseg ``Upsample`` with one scale factor and no fixed size (Semantic
    FPN's scale heads) by :class:`TraceableUpsample`, in place."""
    try:
        from mmseg.models.utils import Upsample
    except ImportError:  # no mmseg, no mmseg Upsample
        return
    for module in list(model.modules()):
        for name, child in module.named_children():
            if isinstance(child, Upsample) and not child.size and \
                    isinstance(child.scale_factor, float):
                setattr(module, name, TraceableUpsample(child.scale_factor, child.mode,
                                                        child.align_corners))


class SegmentationGraph(nn.Module):
    """An mmseg ``EncoderDecoder`` as traced: ``(N, 3, H, W)`` -> ``seg_logits``
    ``(N, C, H, W)`` (bilinear, the decode head's ``align_corners``) and ``seg_pred``
    ``(N, H, W)`` int64."""

    def __init__(self, segmentor: nn.Module) -> None:
        super().__init__()
        self.segmentor = segmentor
        self.align_corners = bool(segmentor.decode_head.align_corners)
        make_pooling_traceable(segmentor)
        make_upsampling_traceable(segmentor)

    def forward(self, inputs: Tensor) -> Tuple[Tensor, Tensor]:
        logits = self.segmentor.decode_head(self.segmentor.extract_feat(inputs))
        size = (_size(inputs, 2), _size(inputs, 3))
        logits = F.interpolate(logits, size=size, mode='bilinear',
                               align_corners=self.align_corners)
        return logits, logits.argmax(1)
