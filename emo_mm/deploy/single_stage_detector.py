"""``OnnxDetector``: an exported single-stage detector (SSD/SSDLite, RetinaNet) run by
onnxruntime or OpenVINO (:mod:`emo_mm.deploy.session`), as an mmdet model.

Registered in mmdet's ``MODELS``, so a config builds it (``type='OnnxDetector'``, see
:func:`emo_mm.deploy.use_onnx_model`) and ``tools/test.py``, ``inference_detector`` and the
visualisers take it like any detector: the config's ``data_preprocessor`` prepares the batch
(the file's input convention), the graph runs the network, box decoding (clipped to each
image's ``img_shape``, fed as the graph's second input) and NMS, and :meth:`predict` rescales
the boxes to the original images. A static graph (one batch size and image size) gets the
images of a larger batch in turns.
"""
from typing import Any, Dict, List, Sequence

import numpy as np
import torch
from mmdet.models.detectors.base import BaseDetector
from mmdet.registry import MODELS
from mmdet.structures import SampleList
from mmengine.structures import InstanceData
from torch import Tensor

from .errors import DeployError
from .runtime_model import RuntimeModelMixin
from .session import DEFAULT_BACKEND, check_input_shape, graph_batch_size


@MODELS.register_module()
class OnnxDetector(RuntimeModelMixin, BaseDetector):
    """Args: ``onnx_file`` (from ``tools/export_onnx.py``), ``data_preprocessor`` (the
    config's), ``backend`` (the runtime: ``'onnxruntime'`` or ``'openvino'``)."""

    def __init__(self, onnx_file: str, data_preprocessor: Dict[str, Any] = None,
                 init_cfg: Dict[str, Any] = None, backend: str = DEFAULT_BACKEND) -> None:
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.open_exported(onnx_file, 'a single-stage detector',
                           lambda meta: meta['task'] == 'detection' and 'wrapper' not in meta,
                           backend)
        names = self.session.required_inputs + self.session.optional_inputs
        self.takes_img_shape = 'img_shape' in names  # files exported before it: input only

    def run_graph(self, inputs: Tensor, img_shapes: Sequence[Sequence[int]] = None) -> List:
        """``[boxes, scores, labels, batch_index]`` numpy arrays for a preprocessed batch
        ``(N, 3, H, W)``; ``img_shapes``: ``(height, width)`` of each image inside it (default:
        the whole input). Raises :class:`DeployError` for a batch the graph does not take."""
        check_input_shape(self.onnx_meta, tuple(inputs.shape), self.onnx_file)
        feed = {'input': inputs.detach().cpu().float().numpy()}
        if self.takes_img_shape:
            shapes = img_shapes if img_shapes is not None else [inputs.shape[-2:]] * len(inputs)
            feed['img_shape'] = np.array([[int(h), int(w)] for h, w in shapes], np.int64)
        return self.session.run(None, feed)

    def predict(self, batch_inputs: Tensor, batch_data_samples: SampleList,
                rescale: bool = True) -> SampleList:
        img_shapes = [sample.metainfo.get('img_shape', batch_inputs.shape[-2:])[:2]
                      for sample in batch_data_samples]
        step = graph_batch_size(self.onnx_meta) or len(batch_inputs)
        outputs = []
        for start in range(0, len(batch_inputs), step):  # a static graph: its batch at a time
            boxes, scores, labels, image = map(torch.from_numpy, self.run_graph(
                batch_inputs[start:start + step], img_shapes[start:start + step]))
            outputs.append((boxes, scores, labels, image + start))
        boxes, scores, labels, image = (torch.cat(parts) for parts in zip(*outputs))
        results = []
        for i, sample in enumerate(batch_data_samples):
            keep = image == i
            bboxes = boxes[keep]  # clipped to the image by the graph, before NMS
            if rescale:  # as mmdet's BaseDenseHead._bbox_post_process
                scale_x, scale_y = sample.metainfo['scale_factor'][:2]
                bboxes = bboxes * bboxes.new_tensor([1 / scale_x, 1 / scale_y] * 2)
            results.append(InstanceData(bboxes=bboxes, scores=scores[keep],
                                        labels=labels[keep]))
        return self.add_pred_to_datasample(batch_data_samples, results)

    def _forward(self, batch_inputs: Tensor, batch_data_samples: SampleList = None):
        return tuple(map(torch.from_numpy, self.run_graph(batch_inputs)))

    def extract_feat(self, batch_inputs: Tensor):
        raise DeployError('an ONNX detector gives predictions only, no features')

    def loss(self, batch_inputs: Tensor, batch_data_samples: SampleList):
        raise DeployError('an ONNX detector cannot be trained; train the PyTorch config')
