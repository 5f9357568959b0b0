"""Deploying emo-mm models outside PyTorch: ONNX export and onnxruntime inference.

* :func:`export_onnx` (``tools/export_onnx.py``): config + checkpoint -> one ``.onnx``;
* :func:`init_onnx_model`: a model object for mmdet's / mmseg's inference APIs;
* :func:`use_onnx_model`: makes a loaded config evaluate an ``.onnx`` (``tools/test.py``).

Needs ``onnx`` and ``onnxruntime`` (``pip install emo-mm[deploy]``), imported when used.
"""
from .api import init_onnx_model, use_onnx_model
from .errors import DeployError
from .export import export_onnx

try:  # register OnnxDetector / OnnxTwoStageDetector / OnnxSegmentor where the framework is
    from . import detector, mask_detector  # noqa: F401  (installed)
except ImportError:
    pass
try:
    from . import segmentor  # noqa: F401
except ImportError:
    pass

__all__ = ['DeployError', 'export_onnx', 'init_onnx_model', 'use_onnx_model']
