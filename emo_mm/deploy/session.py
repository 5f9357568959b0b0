"""onnxruntime sessions: the optional dependency, imported only when a model runs."""
import os
from typing import Optional

from .errors import DeployError


def import_onnxruntime():
    try:
        import onnxruntime
    except ImportError as exc:
        raise DeployError('running .onnx models needs onnxruntime: '
                          '`pip install emo-mm[deploy]` (or `pip install onnx onnxruntime`)'
                          ) from exc
    return onnxruntime


def create_session(onnx_file: str, threads: Optional[int] = None):
    """An ``onnxruntime.InferenceSession`` on CUDA when available, else on the CPU.

    ``threads``: intra-op threads (default: onnxruntime's, all cores); the environment variable
    ``EMO_MM_ORT_THREADS`` sets it too.
    """
    ort = import_onnxruntime()
    options = ort.SessionOptions()
    threads = threads or int(os.environ.get('EMO_MM_ORT_THREADS', 0))
    if threads:
        options.intra_op_num_threads = threads
    providers = [p for p in ('CUDAExecutionProvider', 'CPUExecutionProvider')
                 if p in ort.get_available_providers()]
    try:
        return ort.InferenceSession(str(onnx_file), options, providers=providers)
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidProtobuf types
        raise DeployError(f'{onnx_file!r} is not a loadable ONNX model ({exc}); re-export it '
                          'with `python tools/export_onnx.py CONFIG CHECKPOINT --out FILE.onnx`'
                          ) from exc
