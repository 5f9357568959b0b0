"""``OnnxTwoStageDetector``: an exported Mask R-CNN / Faster R-CNN run by onnxruntime or
OpenVINO, as an mmdet model.

Registered in mmdet's ``MODELS``, so a config builds it (``type='OnnxTwoStageDetector'``, see
:func:`emo_mm.deploy.use_onnx_model`) and ``tools/test.py``, ``inference_detector``,
``DetInferencer`` and the visualisers take it like any detector. The config's
``data_preprocessor`` prepares the batch; the graph (:mod:`emo_mm.deploy.two_stage`) runs the
network, both stages and the mask head on each image's ``img_shape``; :meth:`predict` then does
what mmdet does after the mask head: its own ``FCNMaskHead`` post-processing (sigmoid, bilinear
paste into the original image, ``mask_thr_binary``) and the boxes scaled back to the original
image (``scale_factor``).
"""
from typing import Any, Dict, List, Optional

import numpy as np
import torch
from mmdet.models.detectors.base import BaseDetector
from mmdet.models.roi_heads.mask_heads.fcn_mask_head import FCNMaskHead
from mmdet.registry import MODELS
from mmdet.structures import SampleList
from mmdet.structures.bbox import scale_boxes
from mmengine.config import ConfigDict
from mmengine.structures import InstanceData
from torch import Tensor

from .errors import DeployError
from .runtime_model import RuntimeModelMixin
from .two_stage import MASK_OUTPUT, WRAPPER


class MaskPaster:
    """mmdet's ``FCNMaskHead.predict_by_feat``, unchanged, on the graph's per-detection logits
    (``(n, 1, h, w)`` per image, hence class-agnostic here): sigmoid, paste into the image by
    ``grid_sample`` (bilinear) inside each box, threshold ``mask_thr_binary``; the boxes are
    scaled to the original image in place."""

    class_agnostic = True
    predict_by_feat = FCNMaskHead.predict_by_feat
    _predict_by_feat_single = FCNMaskHead._predict_by_feat_single


@MODELS.register_module(name=WRAPPER)
class OnnxTwoStageDetector(RuntimeModelMixin, BaseDetector):
    """Args: ``onnx_file`` (from ``tools/export_onnx.py``, a two-stage detector),
    ``data_preprocessor`` (the config's), ``backend`` (the runtime: ``'onnxruntime'`` or
    ``'openvino'``)."""

    def __init__(self, onnx_file: str, data_preprocessor: Dict[str, Any] = None,
                 init_cfg: Dict[str, Any] = None, backend: str = 'onnxruntime') -> None:
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        meta = self.open_exported(onnx_file, 'a two-stage detector',
                                  lambda meta: meta.get('wrapper') == WRAPPER, backend)
        self.has_masks = MASK_OUTPUT in meta['outputs']
        self.rcnn_test_cfg = ConfigDict(mask_thr_binary=meta.get('mask_thr_binary', 0.5))

    def run_graph(self, inputs: Tensor, img_shape: Tensor) -> Dict[str, np.ndarray]:
        """The graph's outputs by name for a preprocessed batch and its ``(N, 2)`` image
        sizes."""
        outputs = self.session.run(None, {'input': inputs.detach().cpu().float().numpy(),
                                          'img_shape': img_shape.cpu().long().numpy()})
        return dict(zip(self.onnx_meta['outputs'], outputs))

    @staticmethod
    def image_shapes(batch_inputs: Tensor, batch_data_samples: Optional[SampleList]) -> Tensor:
        """``(N, 2)`` int64 ``img_shape`` of each sample (the padded input's size if none)."""
        full = list(batch_inputs.shape[-2:])
        if batch_data_samples is None:
            return torch.tensor([full] * batch_inputs.shape[0], dtype=torch.long)
        return torch.tensor([list(sample.metainfo.get('img_shape', full)[:2])
                             for sample in batch_data_samples], dtype=torch.long)

    def predict(self, batch_inputs: Tensor, batch_data_samples: SampleList,
                rescale: bool = True) -> SampleList:
        outputs = self.run_graph(batch_inputs, self.image_shapes(batch_inputs,
                                                                 batch_data_samples))
        boxes, scores, labels, image = (torch.from_numpy(outputs[name]) for name in
                                        ('boxes', 'scores', 'labels', 'batch_index'))
        metas = [sample.metainfo for sample in batch_data_samples]
        results: List[InstanceData] = []
        mask_logits = []
        for i in range(len(batch_data_samples)):
            keep = image == i
            results.append(InstanceData(bboxes=boxes[keep].clone(), scores=scores[keep],
                                        labels=labels[keep]))
            if self.has_masks:
                mask_logits.append(torch.from_numpy(outputs[MASK_OUTPUT])[keep][:, None])
        if self.has_masks:
            # As StandardRoIHead.predict_mask: the mask head's post-processing scales the boxes.
            results = MaskPaster().predict_by_feat(tuple(mask_logits), results, metas,
                                                   self.rcnn_test_cfg, rescale=rescale)
        elif rescale:  # as BBoxHead._predict_by_feat_single
            for result, meta in zip(results, metas):
                result.bboxes = scale_boxes(result.bboxes,
                                            [1 / s for s in meta['scale_factor']])
        return self.add_pred_to_datasample(batch_data_samples, results)

    def _forward(self, batch_inputs: Tensor, batch_data_samples: SampleList = None):
        shapes = self.image_shapes(batch_inputs, batch_data_samples)
        return tuple(torch.from_numpy(o) for o in self.run_graph(batch_inputs, shapes).values())

    def extract_feat(self, batch_inputs: Tensor):
        raise DeployError('an ONNX detector gives predictions only, no features')

    def loss(self, batch_inputs: Tensor, batch_data_samples: SampleList):
        raise DeployError('an ONNX detector cannot be trained; train the PyTorch config')
