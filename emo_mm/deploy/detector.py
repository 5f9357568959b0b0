"""``OnnxDetector``: an exported detector run by onnxruntime, as an mmdet model.

Registered in mmdet's ``MODELS``, so a config builds it (``type='OnnxDetector'``, see
:func:`emo_mm.deploy.use_onnx_model`) and ``tools/test.py``, ``inference_detector`` and the
visualisers take it like any detector: the config's ``data_preprocessor`` prepares the batch
(the file's input convention), the graph runs the network, box decoding and NMS, and
:meth:`predict` clips the boxes to each image and rescales them to the original image.
"""
from typing import Any, Dict

import torch
from mmdet.models.detectors.base import BaseDetector
from mmdet.registry import MODELS
from mmdet.structures import SampleList
from mmengine.structures import InstanceData
from torch import Tensor

from .errors import DeployError
from .metadata import dataset_meta, read_metadata


@MODELS.register_module()
class OnnxDetector(BaseDetector):
    """Args: ``onnx_file`` (from ``tools/export_onnx.py``), ``data_preprocessor`` (the
    config's)."""

    def __init__(self, onnx_file: str, data_preprocessor: Dict[str, Any] = None,
                 init_cfg: Dict[str, Any] = None) -> None:
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        meta = read_metadata(onnx_file)
        if meta['task'] != 'detection':
            raise DeployError(f'{onnx_file!r} is a {meta["task"]} model, not a detector')
        self.onnx_file = str(onnx_file)
        self.session = meta.pop('session')
        self.onnx_meta = meta
        self.dataset_meta = dataset_meta(meta)

    def run_graph(self, inputs: Tensor):
        """``(boxes, scores, labels, batch_index)`` numpy arrays for a preprocessed batch."""
        return self.session.run(None, {'input': inputs.detach().cpu().float().numpy()})

    def predict(self, batch_inputs: Tensor, batch_data_samples: SampleList,
                rescale: bool = True) -> SampleList:
        boxes, scores, labels, image = map(torch.from_numpy, self.run_graph(batch_inputs))
        results = []
        for i, sample in enumerate(batch_data_samples):
            keep = image == i
            bboxes = boxes[keep].clone()
            # The graph clips to the (padded) input; mmdet clips to the image inside it.
            height, width = sample.metainfo.get('img_shape', batch_inputs.shape[-2:])[:2]
            bboxes[:, 0::2].clamp_(0, width)
            bboxes[:, 1::2].clamp_(0, height)
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
