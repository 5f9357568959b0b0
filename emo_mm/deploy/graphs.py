"""The modules that are traced into ``.onnx`` files: a model plus its inference post-processing.

Both take the config's preprocessed input, a normalised float32 ``(N, 3, H, W)`` batch (see
:mod:`emo_mm.deploy.metadata`). A *dynamic* graph takes any batch size, height and width; a
*static* one (``static=True``) the traced ``(N, H, W)`` only, and in exchange computes no size
from its input (every size is a constant, folded away by the exporter and onnxruntime; only
the detection tail sizes its candidates, by how many pass ``score_thr``).

* :class:`DetectionGraph` (single-stage anchor detectors: SSD/SSDLite, RetinaNet): head
  outputs -> per-level top ``nms_pre`` (anchor, class) scores -> box decoding, clipped to each
  image -> one class-offset ``NonMaxSuppression`` (mmdet's ``batched_nms``) -> at most
  ``max_per_img`` per image, as mmdet's ``BaseDenseHead.predict_by_feat`` does with the
  config's ``test_cfg``. Inputs ``input`` and ``img_shape`` ``(N, 2)`` int64 (height, width of
  each image inside the padded batch, mmdet's ``img_shape``; optional, by default each image
  fills the input). Outputs ``boxes`` ``(M, 4)`` (input pixels), ``scores`` ``(M,)``,
  ``labels`` ``(M,)`` and ``batch_index`` ``(M,)``, grouped by image, each image's by
  descending score.
* :class:`SegmentationGraph` (mmseg ``EncoderDecoder``): decode head logits resized to the
  input size, ``seg_logits`` ``(N, C, H, W)``, and their argmax ``seg_pred`` ``(N, H, W)``
  (single-channel heads: ``sigmoid > threshold``).
"""
from typing import Optional, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .box_ops import AnchorGrid, DeltaDecoder, unsupported_prior_generator
from .errors import DeployError
from .exportable import DetectionOutputs, ExportableGraph
from .nms import onnx_nms

Size = Union[int, Tensor]


def _size(x: Tensor, dim: int) -> Tensor:
    """``x.shape[dim]`` as a 0-d int64 tensor, so that a trace keeps it symbolic."""
    return torch._shape_as_tensor(x)[dim]


def unsupported_detector_settings(head: nn.Module) -> list:
    """What of a dense head's box coder and ``test_cfg`` :class:`DetectionGraph` does not
    compute as mmdet does (empty: everything is supported)."""
    problems = []
    coder = getattr(head, 'bbox_coder', None)
    if type(coder).__name__ != 'DeltaXYWHBBoxCoder':
        problems.append(f'box coder {type(coder).__name__} (only DeltaXYWHBBoxCoder is '
                        'decoded in the graph)')
    elif getattr(coder, 'add_ctr_clamp', False):
        problems.append('bbox_coder.add_ctr_clamp=True (centre-offset clamping is not in the '
                        'graph)')
    problems += unsupported_prior_generator(getattr(head, 'prior_generator', None))
    cfg = getattr(head, 'test_cfg', None) or {}
    nms = cfg.get('nms') or {}
    if nms.get('type', 'nms') != 'nms':
        problems.append(f"test_cfg.nms.type={nms.get('type')!r} (only 'nms')")
    if cfg.get('min_bbox_size', -1) > 0:
        problems.append(f"test_cfg.min_bbox_size={cfg['min_bbox_size']} (mmdet compares it "
                        'in original-image pixels, which the graph does not know)')
    return problems


class DetectionGraph(DetectionOutputs, ExportableGraph):
    """A single-stage anchor detector with its post-processing; see the module docstring.

    Args:
        detector: an eval-mode mmdet single-stage detector (anchor head, ``DeltaXYWHBBoxCoder``).
        static: trace for one input size: every size is a Python number (no shape arithmetic
            in the graph), which then runs at the traced batch size and size only.
    """

    task = 'detection'
    output_names = DetectionOutputs.box_outputs

    def __init__(self, detector: nn.Module, static: bool = False) -> None:
        super().__init__()
        head = detector.bbox_head
        problems = unsupported_detector_settings(head)
        if problems:
            raise DeployError(f'{type(head).__name__} with ' + '; '.join(problems) +
                              ' cannot be exported as mmdet computes it')
        self.detector = detector
        self.static = static
        self.num_classes = head.num_classes
        self.use_sigmoid = bool(head.use_sigmoid_cls)
        self.cls_out_channels = head.cls_out_channels
        cfg = head.test_cfg
        self.nms_pre = int(cfg.get('nms_pre', -1))
        self.score_thr = float(cfg.get('score_thr', 0.))
        self.min_bbox_size = float(cfg.get('min_bbox_size', -1))
        self.iou_threshold = float(cfg['nms']['iou_threshold'])
        self.class_agnostic = bool(cfg['nms'].get('class_agnostic', False))
        self.max_per_img = int(cfg.get('max_per_img', 100))
        self.anchor_grid = AnchorGrid(head.prior_generator)
        self.decoder = DeltaDecoder(head.bbox_coder)

    def metadata(self) -> dict:
        return dict(num_classes=self.num_classes, max_per_img=self.max_per_img)

    def size(self, x: Tensor, dim: int) -> Size:
        """``x.shape[dim]``: a constant of a static graph, a traced value of a dynamic one."""
        return int(x.shape[dim]) if self.static else _size(x, dim)

    def anchors(self, level: int, height: Size, width: Size) -> Tensor:
        """``(height * width * A, 4)`` anchors of a level, ordered (row, column, anchor)."""
        return self.anchor_grid(level, height, width)

    def decode(self, priors: Tensor, deltas: Tensor, height: Tensor, width: Tensor) -> Tensor:
        """mmdet's ``delta2bbox`` (``DeltaXYWHBBoxCoder``), clipped to ``height`` x ``width``:
        0-d (one size for all) or ``(N, 1)`` tensors (one per image of ``(N, K, 4)`` boxes)."""
        return self.decoder(priors, deltas,
                            torch.stack([width, height, width, height], dim=-1).float())

    def image_sizes(self, inputs: Tensor, img_shape: Optional[Tensor]) -> Tuple[Tensor, Tensor]:
        """``(height, width)``, each ``(N, 1)`` (or ``(1, 1)``) float: every image's
        ``img_shape``, at most the input's size (absent: the input's size)."""
        if self.static:
            size = torch.tensor([inputs.shape[2], inputs.shape[3]])
        else:
            size = torch._shape_as_tensor(inputs)[2:]
        size = size[None] if img_shape is None else torch.minimum(img_shape, size)
        size = size.float()
        return size[:, 0:1], size[:, 1:2]

    def forward(self, inputs: Tensor, img_shape: Optional[Tensor] = None
                ) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        outputs = self.detector.bbox_head(self.detector.extract_feat(inputs))
        if len(outputs) != 2:
            raise DeployError(f'{type(self.detector.bbox_head).__name__} returns '
                              f'{len(outputs)} outputs (e.g. centerness); the graph decodes '
                              'heads giving class scores and box deltas only')
        mlvl_scores, mlvl_labels, mlvl_priors, mlvl_deltas = [], [], [], []
        for level, (cls_score, bbox_pred) in enumerate(zip(*outputs)):
            n = cls_score.shape[0]
            priors = self.anchors(level, self.size(cls_score, 2), self.size(cls_score, 3))
            logits = cls_score.permute(0, 2, 3, 1).reshape(n, -1, self.cls_out_channels)
            # SSD: softmax with the background last; RetinaNet: sigmoid.
            scores = logits.sigmoid() if self.use_sigmoid else logits.softmax(-1)[..., :-1]
            scores = scores.reshape(n, -1)  # (N, anchors * classes)
            deltas = bbox_pred.permute(0, 2, 3, 1).reshape(n, -1, 4)
            if self.static and n == 1:
                # One image: as mmdet, the pairs above score_thr, then the best nms_pre of them
                # (most pairs of a trained model score below it: a small TopK).
                index = (scores[0] > self.score_thr).nonzero()[:, 0]
                scores = scores[0, index]
                if self.nms_pre > 0:
                    scores, best = scores.topk(torch.clamp(_size(scores, 0), max=self.nms_pre))
                    index = index[best]
                scores, index = scores[None], index[None]
            elif self.nms_pre > 0:  # the best nms_pre (anchor, class) pairs of the level
                if self.static:
                    k = min(int(scores.shape[1]), self.nms_pre)
                else:
                    k = torch.clamp(_size(scores, 1), max=self.nms_pre)
                scores, index = scores.topk(k, dim=1)
            else:
                index = torch.arange(self.size(scores, 1))[None].expand(n, -1)
            anchor_index = torch.div(index, self.num_classes, rounding_mode='floor')
            mlvl_scores.append(scores)
            mlvl_labels.append(index % self.num_classes)
            mlvl_priors.append(priors[anchor_index])
            mlvl_deltas.append(deltas.gather(1, anchor_index[..., None].expand(-1, -1, 4)))
        scores = torch.cat(mlvl_scores, 1)  # (N, K)
        labels = torch.cat(mlvl_labels, 1)
        height, width = self.image_sizes(inputs, img_shape)
        # (N, K, 4), clipped to each image before NMS, as mmdet decodes with its img_shape.
        boxes = self.decode(torch.cat(mlvl_priors, 1), torch.cat(mlvl_deltas, 1), height, width)
        if self.min_bbox_size >= 0:  # 0 here: boxes of zero width or height are dropped
            wh = boxes[..., 2:] - boxes[..., :2]
            scores = scores * ((wh > self.min_bbox_size).all(-1)).to(scores.dtype)
        keep = onnx_nms(self.boxes_for_nms(boxes, scores, labels), scores[:, None, :],
                        self.max_per_img, self.iou_threshold, self.score_thr)
        image, box = keep[:, 0], keep[:, 2]
        return boxes[image, box], scores[image, box], labels[image, box], image

    def boxes_for_nms(self, boxes: Tensor, scores: Tensor, labels: Tensor) -> Tensor:
        """mmdet's ``batched_nms``: one NMS for all classes, each class's boxes shifted by
        ``label * (largest coordinate + 1)`` so that no two classes overlap. The largest
        coordinate is taken per image over the boxes above ``score_thr`` (those mmdet keeps)."""
        if self.class_agnostic:
            return boxes
        valid = (scores > self.score_thr)[..., None]
        coordinates = torch.where(valid, boxes, torch.zeros_like(boxes)).flatten(1)
        # A zero joins the coordinates so that an image without candidates reduces too.
        largest = torch.cat([coordinates, coordinates.new_zeros(coordinates.shape[0], 1)],
                            dim=1).amax(dim=1)
        return boxes + labels[..., None].to(boxes.dtype) * (largest[:, None, None] + 1)


class TraceableAdaptiveAvgPool2d(nn.Module):
    """``nn.AdaptiveAvgPool2d`` as two pooling matrices built from the input's size.

    The exporter writes adaptive pooling to a fixed output size as an ``AveragePool`` whose
    kernel is computed from the traced input size; this form keeps height and width symbolic.
    Bin ``i`` of ``s`` over ``n`` pixels covers ``[floor(i n / s), ceil((i + 1) n / s))``,
    as in torch.
    """

    def __init__(self, output_size: Tuple[int, int], static: bool = False) -> None:
        super().__init__()
        self.output_size = output_size
        self.static = static  # the input size is a constant: the matrices fold away

    @staticmethod
    def pooling_matrix(bins: int, length: Size, dtype: torch.dtype) -> Tensor:
        """``(bins, length)``: row ``i`` averages the pixels of bin ``i``."""
        i = torch.arange(bins)
        start = torch.div(i * length, bins, rounding_mode='floor')
        end = torch.div((i + 1) * length + bins - 1, bins, rounding_mode='floor')
        pixel = torch.arange(length)[None, :]
        inside = ((pixel >= start[:, None]) & (pixel < end[:, None])).to(dtype)
        return inside / (end - start)[:, None].to(dtype)

    def forward(self, x: Tensor) -> Tensor:
        height, width = (int(x.shape[2]), int(x.shape[3])) if self.static else \
            (_size(x, 2), _size(x, 3))
        rows = self.pooling_matrix(self.output_size[0], height, x.dtype)
        cols = self.pooling_matrix(self.output_size[1], width, x.dtype)
        return rows @ x @ cols.t()


def make_pooling_traceable(model: nn.Module, static: bool = False) -> None:
    """Replaces every ``nn.AdaptiveAvgPool2d`` with an output other than 1x1 (PSPNet's
    pyramid) by :class:`TraceableAdaptiveAvgPool2d`, in place."""
    for module in list(model.modules()):
        for name, child in module.named_children():
            if isinstance(child, nn.AdaptiveAvgPool2d):
                size = child.output_size
                size = (size, size) if isinstance(size, int) else tuple(size)
                if None not in size and size != (1, 1):
                    setattr(module, name, TraceableAdaptiveAvgPool2d(size, static))


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


class SegmentationGraph(ExportableGraph):
    """An mmseg ``EncoderDecoder`` as traced: ``(N, 3, H, W)`` -> ``seg_logits``
    ``(N, C, H, W)`` (bilinear, the decode head's ``align_corners``) and ``seg_pred``
    ``(N, H, W)`` int64: their argmax, or for a single-channel head (``out_channels=1``)
    ``sigmoid(logits) > threshold``, as mmseg. ``static``: as :class:`DetectionGraph`'s."""

    task = 'segmentation'
    output_names = ('seg_logits', 'seg_pred')

    def __init__(self, segmentor: nn.Module, static: bool = False) -> None:
        super().__init__()
        self.segmentor = segmentor
        self.static = static
        self.align_corners = bool(segmentor.decode_head.align_corners)
        # A single-channel (binary) head: mmseg thresholds its sigmoid instead of an argmax.
        self.threshold = (float(segmentor.decode_head.threshold)
                          if segmentor.decode_head.out_channels == 1 else None)
        make_pooling_traceable(segmentor, static)
        make_upsampling_traceable(segmentor)

    def default_shape(self, cfg) -> Tuple[int, int]:
        """The data preprocessor's padded size, else 512x512."""
        return tuple(cfg.model.get('data_preprocessor', {}).get('size') or (512, 512))

    def dynamic_axes(self) -> dict:
        if self.static:
            return {}
        return dict(input={0: 'batch', 2: 'height', 3: 'width'},
                    seg_logits={0: 'batch', 2: 'height', 3: 'width'},
                    seg_pred={0: 'batch', 1: 'height', 2: 'width'})

    def metadata(self) -> dict:
        head = self.segmentor.decode_head
        return dict(num_classes=head.num_classes, out_channels=head.out_channels,
                    align_corners=self.align_corners, threshold=self.threshold)

    def forward(self, inputs: Tensor) -> Tuple[Tensor, Tensor]:
        logits = self.segmentor.decode_head(self.segmentor.extract_feat(inputs))
        size = (int(inputs.shape[2]), int(inputs.shape[3])) if self.static else \
            (_size(inputs, 2), _size(inputs, 3))
        logits = F.interpolate(logits, size=size, mode='bilinear',
                               align_corners=self.align_corners)
        if self.threshold is not None:  # one channel: as mmseg's postprocess_result
            return logits, (logits[:, 0].sigmoid() > self.threshold).long()
        return logits, logits.argmax(1)
