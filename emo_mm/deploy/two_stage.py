"""Two-stage detectors (Mask R-CNN, Faster R-CNN) as one traced graph, and their export.

:class:`TwoStageGraph` computes what mmdet's ``TwoStageDetector.predict`` computes with the
config's ``test_cfg``, up to the pasting of the masks into the image:

1. backbone (deploy form) and neck;
2. RPN (``rpn`` settings): per level the best ``nms_pre`` anchor scores, box decoding clipped
   to each image (``img_shape``), boxes not wider and higher than ``min_bbox_size`` dropped,
   NMS per level (``iou_threshold``), the best ``max_per_img`` proposals per image;
3. RoI features of each proposal on the FPN level of its size (ONNX ``RoiAlign``, see
   :mod:`emo_mm.deploy.roi_align`), the box head, softmax scores, per-class box decoding
   clipped to the image, per-class NMS (``rcnn``: ``score_thr``, ``iou_threshold``), the best
   ``max_per_img`` detections per image;
4. (Mask R-CNN) the mask head on the kept boxes: logits of each detection's class.

Inputs: ``input`` ``(N, 3, H, W)`` (the preprocessed, padded batch) and ``img_shape`` int64
``(N, 2)``, rows ``(height, width)`` of each image inside the padded batch (mmdet's metainfo
``img_shape``): boxes are clipped to it, as mmdet does, before NMS (at most the input's size;
optional in the file, as for every detection graph: not fed, every image fills the input).
Outputs: ``boxes`` ``(M, 4)`` (input pixels), ``scores`` ``(M,)``, ``labels`` ``(M,)``,
``batch_index`` ``(M,)``, grouped by image, best first, and for Mask R-CNN ``mask_logits``
``(M, h, w)`` at the mask head's size (28x28), in the frame of each box. mmdet's
``FCNMaskHead`` post-processing (sigmoid, paste into the image by bilinear sampling,
``mask_thr_binary``) runs in :class:`emo_mm.deploy.two_stage_detector.OnnxTwoStageDetector`.

Proposals are laid out per image in ``max_per_img`` slots (an image with fewer proposals has
empty slots, whose scores cannot pass any threshold), so the per-class NMS of the second stage
is one ONNX ``NonMaxSuppression`` over ``N x classes`` batches of the same slots, exactly per
class (mmdet offsets each class's boxes instead; the kept sets agree up to float rounding).
"""
from typing import Any, Dict, List, Optional, Tuple

import torch
from torch import Tensor, nn

from .box_ops import AnchorGrid, DeltaDecoder, unsupported_prior_generator
from .errors import DeployError
from .exportable import DetectionOutputs, ExportableGraph
from .nms import onnx_nms
from .roi_align import MIN_OPSET, MultiLevelRoIAlign

WRAPPER = 'OnnxTwoStageDetector'
MASK_OUTPUT = 'mask_logits'
# What the two-stage outputs add to every detection graph's input convention.
MASK_CONVENTION = ('; mask_logits: each detection\'s class logits at the mask head\'s size in '
                   'the frame of its box (sigmoid, paste into the box, threshold '
                   'mask_thr_binary)')
SUPPORTED = ('two-stage detectors with an RPNHead and a StandardRoIHead (Faster R-CNN, Mask '
             'R-CNN): AnchorGenerator, DeltaXYWHBBoxCoder, SingleRoIExtractor with RoIAlign '
             '(avg), BBoxHead, FCNMaskHead, nms')


def _size(x: Tensor, dim: int) -> Tensor:
    """``x.shape[dim]`` as a 0-d int64 tensor, so that a trace keeps it symbolic."""
    return torch._shape_as_tensor(x)[dim]


# ----------------------------------------------------------------------------- what is supported
def _registered(model_type: Any, registry) -> Optional[type]:
    """The class a config's ``type`` (a name or a class) builds, ``None`` if unknown."""
    if isinstance(model_type, type):
        return model_type
    return registry.get(model_type) if isinstance(model_type, str) else None


def check_config(model_cfg: dict, config_name: str) -> None:
    """Raises :class:`DeployError` unless the config's two-stage detector is one the graph
    computes exactly (checked again on the built model by :func:`check_model`)."""
    from mmdet.models.dense_heads import RPNHead
    from mmdet.models.roi_heads import StandardRoIHead

    from ..registries import registry
    MODELS = registry('mmdet')
    rpn = model_cfg.get('rpn_head') or {}
    roi = model_cfg.get('roi_head') or {}
    problems = []
    if _registered(rpn.get('type'), MODELS) is not RPNHead:
        problems.append(f'rpn_head {rpn.get("type")!r} (not RPNHead)')
    if _registered(roi.get('type'), MODELS) is not StandardRoIHead:
        problems.append(f'roi_head {roi.get("type")!r} (not StandardRoIHead)')
    if problems:
        raise DeployError(f'{config_name} is a two-stage detector ({model_cfg.get("type")}) '
                          f'with {" and ".join(problems)}: not supported for ONNX export; '
                          f'supported: {SUPPORTED}')


def _check_coder(coder: Any, where: str) -> List[str]:
    name = type(coder).__name__
    if name != 'DeltaXYWHBBoxCoder':
        return [f'{where} box coder {name} (not DeltaXYWHBBoxCoder)']
    if getattr(coder, 'add_ctr_clamp', False):
        return [f'{where} box coder with add_ctr_clamp=True (the graph decodes without it)']
    return []


def check_model(detector: nn.Module) -> None:
    """Raises :class:`DeployError` naming each part of a built two-stage detector that
    :class:`TwoStageGraph` does not compute as mmdet does."""
    problems = []
    rpn, roi = detector.rpn_head, detector.roi_head
    problems += [f'RPN {p}' for p in
                 unsupported_prior_generator(getattr(rpn, 'prior_generator', None))]
    problems += _check_coder(rpn.bbox_coder, 'RPN')
    problems += _check_coder(roi.bbox_head.bbox_coder, 'box head')
    if roi.with_shared_head:
        problems.append('a shared RoI head')
    if getattr(roi.bbox_head, 'custom_cls_channels', False):
        problems.append('a box head with custom classification channels')
    extractors = [('bbox_roi_extractor', roi.bbox_roi_extractor)]
    if roi.with_mask and not roi.share_roi_extractor:
        extractors.append(('mask_roi_extractor', roi.mask_roi_extractor))
    for name, extractor in extractors:
        kind = type(extractor).__name__
        layer = extractor.roi_layers[0] if hasattr(extractor, 'roi_layers') else None
        if kind != 'SingleRoIExtractor' or type(layer).__name__ != 'RoIAlign':
            problems.append(f'{name} {kind} with {type(layer).__name__}')
        elif layer.pool_mode != 'avg':
            problems.append(f'{name} RoIAlign pool_mode={layer.pool_mode!r} (only avg)')
    if roi.with_mask and type(roi.mask_head).__name__ != 'FCNMaskHead':
        problems.append(f'mask head {type(roi.mask_head).__name__} (not FCNMaskHead)')
    for stage in ('rpn', 'rcnn'):
        nms = (detector.test_cfg or {}).get(stage, {}).get('nms') or {}
        if nms.get('type', 'nms') != 'nms' or nms.get('class_agnostic'):
            problems.append(f'test_cfg.{stage}.nms {dict(nms)!r} (only type nms, per class)')
    if problems:
        raise DeployError(f'{type(detector).__name__} has ' + '; '.join(problems) +
                          f': not supported for ONNX export; supported: {SUPPORTED}')


# --------------------------------------------------------------------------------------- graph
def _sort_by_image_then_score(image: Tensor, score: Tensor) -> Tensor:
    """Order of rows grouped by image (ascending), each image's by descending score
    (``score`` in ``[0, 1]``; float64 keys keep near-equal float32 scores apart)."""
    key = image.double() * 2 - score.double()
    return key.topk(_size(key, 0), largest=False).indices


def _rank_in_image(image: Tensor, batch: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
    """For rows grouped by image: ``(rank of each row within its image, rows per image,
    index of each image's first row)``."""
    counts = (image[:, None] == torch.arange(batch)[None, :]).long().sum(0)
    first = torch.cumsum(counts, 0) - counts
    return torch.arange(_size(image, 0)) - first[image], counts, first


class TwoStageGraph(DetectionOutputs, ExportableGraph):
    """A Faster / Mask R-CNN with its inference post-processing; see the module docstring.

    ``forward(inputs (N, 3, H, W), img_shape (N, 2) int64)`` -> ``boxes, scores, labels,
    batch_index[, mask_logits]``.
    """

    task = 'detection'
    min_opset = MIN_OPSET
    opset_reason = ('two-stage detectors need ONNX RoiAlign with coordinate_transformation_mode '
                    f'(opset >= {MIN_OPSET})')

    def __init__(self, detector: nn.Module, static: bool = False) -> None:
        super().__init__()
        check_model(detector)
        self.static = static  # traced at one size; the graph computes its sizes either way
        self.detector = detector
        rpn, roi = detector.rpn_head, detector.roi_head
        rpn_cfg, rcnn_cfg = detector.test_cfg.rpn, detector.test_cfg.rcnn
        # RPN
        self.rpn_sigmoid = bool(rpn.use_sigmoid_cls)
        self.rpn_nms_pre = int(rpn_cfg.get('nms_pre', -1))
        self.rpn_max_per_img = int(rpn_cfg.max_per_img)
        self.rpn_iou = float(rpn_cfg.nms.iou_threshold)
        self.rpn_min_size = float(rpn_cfg.get('min_bbox_size', -1))
        self.anchors = AnchorGrid(rpn.prior_generator)
        self.rpn_decoder = DeltaDecoder(rpn.bbox_coder)
        # box head
        bbox_head = roi.bbox_head
        self.num_classes = int(bbox_head.num_classes)
        self.reg_class_agnostic = bool(bbox_head.reg_class_agnostic)
        self.score_thr = float(rcnn_cfg.get('score_thr', 0.))
        self.iou_threshold = float(rcnn_cfg.nms.iou_threshold)
        self.max_per_img = int(rcnn_cfg.get('max_per_img', -1))
        self.box_decoder = DeltaDecoder(bbox_head.bbox_coder)
        self.bbox_extractor = MultiLevelRoIAlign(roi.bbox_roi_extractor)
        # mask head
        self.with_mask = bool(roi.with_mask)
        if self.with_mask:
            extractor = roi.bbox_roi_extractor if roi.share_roi_extractor \
                else roi.mask_roi_extractor
            self.mask_extractor = MultiLevelRoIAlign(extractor)
            self.mask_class_agnostic = bool(roi.mask_head.class_agnostic)
            self.mask_thr_binary = float(rcnn_cfg.get('mask_thr_binary', 0.5))

    @property
    def output_names(self) -> Tuple[str, ...]:
        return self.box_outputs + ((MASK_OUTPUT, ) if self.with_mask else ())

    def convention(self) -> str:
        return super().convention() + (MASK_CONVENTION if self.with_mask else '')

    def metadata(self) -> Dict[str, Any]:
        meta = dict(wrapper=WRAPPER, num_classes=self.num_classes,
                    max_per_img=self.max_per_img, rpn_max_per_img=self.rpn_max_per_img)
        if self.with_mask:
            head = self.detector.roi_head.mask_head
            upsampled = head.scale_factor if head.upsample is not None else 1
            meta.update(mask_thr_binary=self.mask_thr_binary,
                        mask_size=[int(s * upsampled) for s in self.mask_extractor.output_size])
        return meta

    # ---------------------------------------------------------------------------- first stage
    def proposals(self, feats: List[Tensor], limits: Tensor) -> Tuple[Tensor, Tensor]:
        """RPN: ``(N, P, 4)`` proposals in ``P = rpn max_per_img`` slots per image, best first,
        and ``(N, P)`` which slots hold one. ``limits``: ``(N, 1, 4)`` rows ``(w, h, w, h)``."""
        cls_scores, bbox_preds = self.detector.rpn_head(feats)
        n = _size(feats[0], 0)
        mlvl_scores, mlvl_boxes, mlvl_levels = [], [], []
        for level, (cls_score, bbox_pred) in enumerate(zip(cls_scores, bbox_preds)):
            batch = cls_score.shape[0]
            priors = self.anchors(level, _size(cls_score, 2), _size(cls_score, 3))
            logits = cls_score.permute(0, 2, 3, 1)
            if self.rpn_sigmoid:
                scores = logits.reshape(batch, -1).sigmoid()
            else:  # two channels per anchor, the background last
                scores = logits.reshape(batch, -1, 2).softmax(-1)[..., 0]
            deltas = bbox_pred.permute(0, 2, 3, 1).reshape(batch, -1, 4)
            if self.rpn_nms_pre > 0:
                k = torch.clamp(_size(scores, 1), max=self.rpn_nms_pre)
                scores, index = scores.topk(k, dim=1)
                deltas = deltas.gather(1, index[..., None].expand(-1, -1, 4))
                priors = priors[index]
            boxes = self.rpn_decoder(priors, deltas, limits)
            mlvl_scores.append(scores)
            mlvl_boxes.append(boxes)
            mlvl_levels.append(torch.zeros_like(scores[0], dtype=torch.long) + level)
        scores = torch.cat(mlvl_scores, 1)  # (N, K)
        boxes = torch.cat(mlvl_boxes, 1)  # (N, K, 4)
        levels = torch.cat(mlvl_levels)  # (K,)
        valid = torch.ones_like(scores, dtype=torch.bool)
        if self.rpn_min_size >= 0:
            wh = boxes[..., 2:] - boxes[..., :2]
            valid = (wh > self.rpn_min_size).all(-1)
        # NMS within each level: one score row per level, -1 (below the threshold) elsewhere.
        own_level = levels[None, None, :] == torch.arange(len(cls_scores))[None, :, None]
        level_scores = torch.where(own_level & valid[:, None, :], scores[:, None, :],
                                   torch.full_like(scores[:, None, :], -1.))
        keep = onnx_nms(boxes, level_scores, self.rpn_max_per_img, self.rpn_iou, -0.5)
        image, box = keep[:, 0], keep[:, 2]
        order = _sort_by_image_then_score(image, scores[image, box])
        image, box = image[order], box[order]
        rank, counts, first = _rank_in_image(image, n)
        # Slot s of image b holds its s-th best proposal; empty slots point at a dummy row.
        slot = torch.arange(self.rpn_max_per_img)
        filled = slot[None, :] < counts[:, None]  # (N, P)
        row = torch.where(filled, first[:, None] + slot[None, :],
                          torch.zeros_like(filled, dtype=torch.long) + _size(box, 0))
        box = torch.cat([box, torch.zeros(1, dtype=box.dtype)])
        return boxes[torch.arange(n)[:, None], box[row]], filled

    # --------------------------------------------------------------------------- second stage
    def forward(self, inputs: Tensor, img_shape: Tensor) -> Tuple[Tensor, ...]:
        n = _size(inputs, 0)
        feats = list(self.detector.extract_feat(inputs))
        hw = torch.minimum(img_shape, torch._shape_as_tensor(inputs)[2:]).float()
        limits = torch.stack([hw[:, 1], hw[:, 0], hw[:, 1], hw[:, 0]], dim=1)[:, None, :]
        proposals, filled = self.proposals(feats, limits)  # (N, P, 4), (N, P)
        slots = proposals.shape[1]
        rois = proposals.reshape(-1, 4)
        roi_image = torch.arange(n)[:, None].expand(-1, slots).reshape(-1)
        cls_score, bbox_pred = self.detector.roi_head.bbox_head(
            self.bbox_extractor(feats, rois, roi_image))
        c = self.num_classes
        scores = cls_score.softmax(-1)[:, :c].reshape(n, slots, c)
        # Empty slots score below any threshold.
        scores = torch.where(filled[..., None], scores,
                             torch.full_like(scores, min(self.score_thr, 0.) - 1.))
        deltas = bbox_pred.reshape(n, slots, -1, 4)  # (N, P, C or 1, 4)
        boxes = self.box_decoder(proposals[:, :, None, :], deltas, limits[:, :, None, :])
        boxes = boxes.expand(-1, -1, c, -1)
        # Per-class NMS: one NMS batch per (image, class) over that class's boxes of the slots.
        class_boxes = boxes.permute(0, 2, 1, 3).reshape(-1, slots, 4)  # (N*C, P, 4)
        class_scores = scores.permute(0, 2, 1).reshape(-1, slots)  # (N*C, P)
        per_class = self.max_per_img if self.max_per_img > 0 else slots
        keep = onnx_nms(class_boxes, class_scores[:, None, :], per_class, self.iou_threshold,
                        self.score_thr)
        pair, slot = keep[:, 0], keep[:, 2]
        image = torch.div(pair, c, rounding_mode='floor')
        kept_scores = class_scores[pair, slot]
        order = _sort_by_image_then_score(image, kept_scores)
        pair, slot, image, kept_scores = pair[order], slot[order], image[order], \
            kept_scores[order]
        if self.max_per_img > 0:
            top = (_rank_in_image(image, n)[0] < self.max_per_img).nonzero().squeeze(1)
            pair, slot, image, kept_scores = pair[top], slot[top], image[top], kept_scores[top]
        det_boxes, labels = class_boxes[pair, slot], pair % c
        outputs = (det_boxes, kept_scores, labels, image)
        if self.with_mask:
            outputs += (self.mask_logits(feats, det_boxes, labels, image), )
        return outputs

    def mask_logits(self, feats: List[Tensor], boxes: Tensor, labels: Tensor,
                    image: Tensor) -> Tensor:
        """``(M, h, w)`` mask head logits of each detection's class."""
        # One dummy RoI more: the convolutions never see an empty batch (no detection).
        rois = torch.cat([boxes, boxes.new_zeros((1, 4))])
        roi_image = torch.cat([image, torch.zeros(1, dtype=image.dtype)])
        logits = self.detector.roi_head.mask_head(self.mask_extractor(feats, rois, roi_image))
        logits = logits[:-1]
        if self.mask_class_agnostic:
            return logits[:, 0]
        return logits[torch.arange(_size(labels, 0)), labels]


def is_two_stage(model: nn.Module) -> bool:
    """Whether ``model`` is an mmdet ``TwoStageDetector``."""
    from mmdet.models.detectors import TwoStageDetector
    return isinstance(model, TwoStageDetector)
