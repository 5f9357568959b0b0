"""Deploying emo-mm models outside PyTorch: ONNX export, and inference by onnxruntime or
OpenVINO (``backend=``).

* :func:`export_onnx` (``tools/export_onnx.py``): config + checkpoint -> one ``.onnx``;
* :func:`init_onnx_model`: a model object for mmdet's / mmseg's inference APIs;
* :func:`use_onnx_model`: makes a loaded config evaluate an ``.onnx`` (``tools/test.py``).

Needs ``onnx`` and ``onnxruntime`` (``pip install emo-mm[deploy]``), or ``openvino``
(``pip install emo-mm[openvino]``), imported when used.

Modules: :mod:`.export` (the one export function), :mod:`.exportable` (what it asks of a
graph), the graphs (:mod:`.graphs`: single-stage detection and segmentation; :mod:`.two_stage`;
their pieces :mod:`.box_ops`, :mod:`.nms`, :mod:`.roi_align`, :mod:`.emo_graph`),
:mod:`.tracing` (the exporter call), :mod:`.metadata` (what a file records and the checks on
it), :mod:`.session` (the runtimes), the wrappers (:mod:`.single_stage_detector`,
:mod:`.two_stage_detector`, :mod:`.segmentor`, sharing :mod:`.runtime_model`) and
:mod:`.api`.
"""
from .api import init_onnx_model, use_onnx_model
from .errors import DeployError
from .export import export_onnx

# The runtime-backed models (OnnxDetector, OnnxTwoStageDetector, OnnxSegmentor) register
# themselves in mmdet's / mmseg's registry when :func:`use_onnx_model` imports their modules,
# only the framework's the config needs: importing this package (as every tool does for
# DeployError) then imports neither framework's models.

__all__ = ['DeployError', 'export_onnx', 'init_onnx_model', 'use_onnx_model']
