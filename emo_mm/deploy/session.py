"""onnxruntime sessions: the optional dependency, imported only when a model runs."""
import os
from typing import Any, Dict, List, Optional, Sequence, Union

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
    """An ``onnxruntime.InferenceSession`` on the CPU (onnxruntime's CPU provider, the one
    tested; the wrappers hand it numpy arrays and return CPU tensors).

    ``threads``: intra-op threads (default: onnxruntime's, all cores); the environment variable
    ``EMO_MM_ORT_THREADS`` sets it too.
    """
    ort = import_onnxruntime()
    options = ort.SessionOptions()
    # Errors only: onnxruntime's load-time notes (e.g. that detection graphs list their optional
    # ``img_shape`` among the inputs, which is what makes it optional) are not the user's to act on.
    options.log_severity_level = 3
    threads = threads or int(os.environ.get('EMO_MM_ORT_THREADS', 0))
    if threads:
        options.intra_op_num_threads = threads
    providers = ['CPUExecutionProvider']
    try:
        return ort.InferenceSession(str(onnx_file), options, providers=providers)
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidProtobuf types
        raise DeployError(f'{onnx_file!r} is not a loadable ONNX model ({exc}); re-export it '
                          'with `python tools/export_onnx.py CONFIG CHECKPOINT --out FILE.onnx`'
                          ) from exc


def optional_inputs(session) -> List[str]:
    """Inputs with a default value (overridable initializers), e.g. detection's
    ``img_shape``; :meth:`session.get_inputs` lists only the required ones."""
    return [i.name for i in session.get_overridable_initializers()]


def graph_input_shape(meta: Dict[str, Any]) -> List[Union[int, str]]:
    """The ``input`` shape the file was exported for: ints where fixed, names where any."""
    return list(meta.get('input', {}).get('shape') or ['batch', 3, 'height', 'width'])


def graph_batch_size(meta: Dict[str, Any]) -> Optional[int]:
    """The batch size a static graph takes (``None``: any)."""
    batch = graph_input_shape(meta)[0]
    return batch if isinstance(batch, int) else None


def check_input_shape(session, meta: Dict[str, Any], shape: Sequence[int],
                      onnx_file: str) -> None:
    """Raises :class:`DeployError` naming the sizes a graph takes when ``shape`` (of an
    ``input`` batch) is not one of them."""
    expected = graph_input_shape(meta)
    if len(shape) == len(expected) and all(
            not isinstance(e, int) or e == s for e, s in zip(expected, shape)):
        return
    wanted = 'x'.join(str(e) for e in expected)
    if all(isinstance(e, int) for e in expected):
        raise DeployError(
            f'{onnx_file!r} is a static graph: it takes input batches of exactly {wanted} '
            f'(batch x channels x height x width; the config\'s test pipeline resizes every '
            f'image to {expected[2]}x{expected[3]}), got {"x".join(map(str, shape))}. Prepare '
            'images with the config\'s test pipeline (init_onnx_model and tools/test.py do), '
            'or export a graph for any size: `python tools/export_onnx.py CONFIG CHECKPOINT '
            '--out FILE.onnx --dynamic`')
    raise DeployError(f'{onnx_file!r} takes input batches of shape {wanted}, got '
                      f'{"x".join(map(str, shape))}')
