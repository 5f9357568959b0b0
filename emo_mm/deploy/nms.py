"""ONNX ``NonMaxSuppression`` as a traceable torch function.

mmcv's ``nms`` has no ONNX symbolic (and torchvision, whose ``nms`` has one, is not used here),
so the exported detectors call :func:`onnx_nms`: in eager mode (and while tracing, to produce
the example outputs) it computes what ONNX's operator computes, with mmcv's kernel, and the
TorchScript exporter writes the operator itself.
"""
import torch
from torch import Tensor


class _NonMaxSuppression(torch.autograd.Function):

    @staticmethod
    def forward(ctx, boxes: Tensor, scores: Tensor, max_per_class: int, iou_threshold: float,
                score_threshold: float) -> Tensor:
        from mmcv.ops import nms
        selected = []
        for b in range(scores.shape[0]):
            for c in range(scores.shape[1]):
                keep = (scores[b, c] > score_threshold).nonzero().squeeze(1)
                if keep.numel() == 0:
                    continue
                _, kept = nms(boxes[b, keep], scores[b, c, keep], iou_threshold)
                kept = keep[kept[:max_per_class]]  # mmcv returns them by descending score
                selected.append(torch.stack([torch.full_like(kept, b), torch.full_like(kept, c),
                                             kept], dim=1))
        if not selected:
            return boxes.new_zeros((0, 3), dtype=torch.int64)
        return torch.cat(selected).to(torch.int64)

    @staticmethod
    def symbolic(g, boxes, scores, max_per_class, iou_threshold, score_threshold):
        return g.op('NonMaxSuppression', boxes, scores,
                    g.op('Constant', value_t=torch.tensor([max_per_class], dtype=torch.int64)),
                    g.op('Constant', value_t=torch.tensor([iou_threshold], dtype=torch.float)),
                    g.op('Constant', value_t=torch.tensor([score_threshold], dtype=torch.float)),
                    center_point_box_i=0)


def onnx_nms(boxes: Tensor, scores: Tensor, max_per_class: int, iou_threshold: float,
             score_threshold: float) -> Tensor:
    """Per-class NMS over a batch, as ONNX ``NonMaxSuppression`` (corner boxes).

    Args:
        boxes: ``(N, K, 4)`` boxes ``x1, y1, x2, y2``.
        scores: ``(N, C, K)`` scores of every box for every class.
        max_per_class: at most this many boxes are kept per image and class.
        iou_threshold: a box is dropped if it overlaps a kept, higher-scoring one by more.
        score_threshold: boxes scoring at most this are dropped first.

    Returns:
        ``(M, 3)`` int64 rows ``(image, class, box index)``, grouped by image and class, each
        group by descending score.
    """
    return _NonMaxSuppression.apply(boxes, scores, int(max_per_class), float(iou_threshold),
                                    float(score_threshold))
