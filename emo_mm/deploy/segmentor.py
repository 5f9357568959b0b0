"""``OnnxSegmentor``: an exported segmentor run by onnxruntime or OpenVINO, as an mmseg model.

Registered in mmseg's ``MODELS``, so a config builds it (``type='OnnxSegmentor'``, see
:func:`emo_mm.deploy.use_onnx_model`) and ``tools/test.py``, ``inference_model`` and the
visualisers take it like any segmentor. The graph replaces ``EncoderDecoder.encode_decode``
(logits at the input size); mmseg's own ``EncoderDecoder`` code does the rest: whole or
slide inference (``test_cfg.mode``; slide runs the graph on each crop), then
``postprocess_result`` (padding removed, logits resized to the original image, argmax).
"""
from types import SimpleNamespace
from typing import Any, Dict, List

import torch
from mmengine.config import ConfigDict
from mmseg.models.segmentors import BaseSegmentor, EncoderDecoder
from mmseg.registry import MODELS
from torch import Tensor

from .errors import DeployError
from .runtime_model import RuntimeModelMixin
from .session import DEFAULT_BACKEND, check_input_shape


@MODELS.register_module()
class OnnxSegmentor(RuntimeModelMixin, BaseSegmentor):
    """Args: ``onnx_file`` (from ``tools/export_onnx.py``), ``data_preprocessor`` and
    ``test_cfg`` (the config's), ``backend`` (the runtime: ``'onnxruntime'`` or
    ``'openvino'``)."""

    # mmseg's inference and post-processing, unchanged (they call encode_decode below).
    predict = EncoderDecoder.predict
    inference = EncoderDecoder.inference
    whole_inference = EncoderDecoder.whole_inference
    slide_inference = EncoderDecoder.slide_inference

    def __init__(self, onnx_file: str, data_preprocessor: Dict[str, Any] = None,
                 test_cfg: Dict[str, Any] = None, init_cfg: Dict[str, Any] = None,
                 backend: str = DEFAULT_BACKEND) -> None:
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        meta = self.open_exported(onnx_file, 'a segmentor',
                                  lambda meta: meta['task'] == 'segmentation', backend)
        self.test_cfg = ConfigDict(test_cfg or dict(mode='whole'))
        self.align_corners = meta['align_corners']
        self.num_classes = meta['num_classes']
        self.out_channels = meta['out_channels']
        # postprocess_result reads decode_head.threshold (single-channel heads).
        self.decode_head = SimpleNamespace(threshold=meta.get('threshold'),
                                           num_classes=self.num_classes,
                                           out_channels=self.out_channels,
                                           align_corners=self.align_corners)

    def encode_decode(self, inputs: Tensor, batch_img_metas: List[dict]) -> Tensor:
        """``(N, 3, H, W)`` preprocessed batch -> ``(N, C, H, W)`` logits (the graph's)."""
        check_input_shape(self.onnx_meta, tuple(inputs.shape), self.onnx_file)
        logits = self.session.run(['seg_logits'],
                                  {'input': inputs.detach().cpu().float().numpy()})[0]
        return torch.from_numpy(logits).to(inputs.device)

    def _forward(self, inputs: Tensor, data_samples=None) -> Tensor:
        return self.encode_decode(inputs, [])

    def extract_feat(self, inputs: Tensor):
        raise DeployError('an ONNX segmentor gives predictions only, no features')

    def loss(self, inputs: Tensor, data_samples):
        raise DeployError('an ONNX segmentor cannot be trained; train the PyTorch config')
