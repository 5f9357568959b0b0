"""Deploying emo-mm models outside PyTorch: ONNX export and onnxruntime inference.

* :func:`export_onnx` (``tools/export_onnx.py``): config + checkpoint -> one ``.onnx``;
* :func:`init_onnx_model`: a model object for mmdet's / mmseg's inference APIs;
* :func:`use_onnx_model`: makes a loaded config evaluate an ``.onnx`` (``tools/test.py``).

Needs ``onnx`` and ``onnxruntime`` (``pip install emo-mm[deploy]``), imported when used.
"""
from .api import init_onnx_model, use_onnx_model
from .errors import DeployError
from .export import export_onnx

# The onnxruntime-backed models (OnnxDetector, OnnxTwoStageDetector, OnnxSegmentor) register
# themselves in mmdet's / mmseg's registry when :func:`use_onnx_model` imports their modules,
# only the framework's the config needs: importing this package (as every tool does for
# DeployError) then imports neither framework's models.

__all__ = ['DeployError', 'export_onnx', 'init_onnx_model', 'use_onnx_model']
