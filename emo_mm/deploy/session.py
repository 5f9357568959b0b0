"""Runtimes that run an exported ``.onnx``: one session abstraction, two implementations.

* :class:`OnnxruntimeSession`: onnxruntime (``pip install emo-mm[deploy]``), the default;
* :class:`OpenVINOSession`: OpenVINO reading the same file (``pip install emo-mm[openvino]``),
  on the CPU in float32.

The wrappers (``OnnxDetector``, ``OnnxTwoStageDetector``, ``OnnxSegmentor``) and
:func:`~emo_mm.deploy.metadata.read_metadata` take a :class:`RuntimeSession` from
:func:`open_session` by the backend's name, so both runtimes share the pipelines, the wrappers
and the metadata checks. The runtimes are imported when a session opens.
"""
import os
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np

from .errors import DeployError

BACKENDS = ('onnxruntime', 'openvino')
DEFAULT_BACKEND = 'onnxruntime'
INSTALL = {'onnxruntime': '`pip install emo-mm[deploy]` (or `pip install onnx onnxruntime`)',
           'openvino': '`pip install emo-mm[openvino]` (or `pip install onnx openvino`)'}
# Errors only: onnxruntime's load-time notes (e.g. that detection graphs list their optional
# ``img_shape`` among the inputs, which is what makes it optional) are not the user's to act on.
ORT_ERRORS_ONLY = 3


def import_runtime(backend: str):
    """The runtime's module; a :class:`DeployError` naming its install when it is missing."""
    check_backend(backend)
    try:
        if backend == 'openvino':
            import openvino
            return openvino
        import onnxruntime
        return onnxruntime
    except ImportError as exc:
        raise DeployError(f'running .onnx models with {backend} needs {backend}: '
                          f'{INSTALL[backend]}') from exc


def import_onnxruntime():
    return import_runtime('onnxruntime')


def check_backend(backend: str) -> None:
    if backend not in BACKENDS:
        raise DeployError(f'unknown runtime backend {backend!r}; choose one of '
                          f'{", ".join(BACKENDS)}')


def not_loadable(onnx_file: str, exc: Exception) -> DeployError:
    reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return DeployError(f'{onnx_file!r} is not a loadable ONNX model ({reason}); re-export it '
                       'with `python tools/export_onnx.py CONFIG CHECKPOINT --out FILE.onnx`')


def create_session(onnx_file: str, threads: Optional[int] = None):
    """An ``onnxruntime.InferenceSession`` on the CPU (onnxruntime's CPU provider, the one
    tested; the wrappers hand it numpy arrays and return CPU tensors).

    ``threads``: intra-op threads (default: onnxruntime's, all cores); the environment variable
    ``EMO_MM_ORT_THREADS`` sets it too.
    """
    ort = import_onnxruntime()
    options = ort.SessionOptions()
    options.log_severity_level = ORT_ERRORS_ONLY
    threads = threads or int(os.environ.get('EMO_MM_ORT_THREADS', 0))
    if threads:
        options.intra_op_num_threads = threads
    try:
        return ort.InferenceSession(str(onnx_file), options, providers=['CPUExecutionProvider'])
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidProtobuf types
        raise not_loadable(onnx_file, exc) from exc


def optional_inputs(session) -> List[str]:
    """Inputs with a default value (overridable initializers), e.g. detection's
    ``img_shape``; :meth:`session.get_inputs` lists only the required ones."""
    return [i.name for i in session.get_overridable_initializers()]


class RuntimeSession:
    """An exported file opened in one runtime.

    ``required_inputs`` / ``optional_inputs``: input names (an optional one has a default in
    the file, e.g. detection's ``img_shape``); ``output_names``; ``metadata``: the file's
    ``metadata_props``; :meth:`run` as onnxruntime's: ``(output names or None, feed)`` ->
    numpy arrays.
    """

    backend: str
    required_inputs: List[str]
    optional_inputs: List[str]
    output_names: List[str]
    metadata: Dict[str, str]

    def run(self, outputs: Optional[Sequence[str]], feed: Dict[str, np.ndarray]
            ) -> List[np.ndarray]:
        raise NotImplementedError


class OnnxruntimeSession(RuntimeSession):
    backend = 'onnxruntime'

    def __init__(self, onnx_file: str, threads: Optional[int] = None) -> None:
        self.session = create_session(onnx_file, threads)
        self.required_inputs = [i.name for i in self.session.get_inputs()]
        self.optional_inputs = optional_inputs(self.session)
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.metadata = dict(self.session.get_modelmeta().custom_metadata_map)

    def run(self, outputs, feed):
        return self.session.run(None if outputs is None else list(outputs), feed)


class OpenVINOSession(RuntimeSession):
    """OpenVINO's CPU plugin on the file, float32 (``INFERENCE_PRECISION_HINT``: on CPUs with
    bfloat16 units it would otherwise compute in bfloat16). OpenVINO reads an input with a
    default (an initializer of the same name) as a constant, so the default is taken out of
    the graph and fed here when the input is not."""

    backend = 'openvino'

    def __init__(self, onnx_file: str, threads: Optional[int] = None) -> None:
        ov = import_runtime('openvino')
        import onnx
        from onnx import numpy_helper
        try:
            model = onnx.load(str(onnx_file))
        except Exception as exc:  # protobuf's DecodeError, or onnx's own checks
            raise not_loadable(onnx_file, exc) from exc
        declared = [i.name for i in model.graph.input]
        self.defaults = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer
                         if t.name in declared}
        weights = [t for t in model.graph.initializer if t.name not in self.defaults]
        del model.graph.initializer[:]
        model.graph.initializer.extend(weights)
        self.required_inputs = [n for n in declared if n not in self.defaults]
        self.optional_inputs = [n for n in declared if n in self.defaults]
        self.output_names = [o.name for o in model.graph.output]
        self.metadata = {p.key: p.value for p in model.metadata_props}
        config = {'INFERENCE_PRECISION_HINT': 'f32'}
        threads = threads or int(os.environ.get('EMO_MM_OV_THREADS', 0))
        if threads:
            config['INFERENCE_NUM_THREADS'] = threads
        core = ov.Core()
        try:
            self.model = core.compile_model(core.read_model(model.SerializeToString()), 'CPU',
                                            config)
        except Exception as exc:  # OpenVINO's own error types
            raise not_loadable(onnx_file, exc) from exc
        # The outputs in the file's order (OpenVINO may name a tensor by an inner name first).
        self.outputs = {name: port for name, port in zip(self.output_names,
                                                         self.model.outputs)}

    def run(self, outputs, feed):
        feed = {**{k: v for k, v in self.defaults.items() if k not in feed}, **feed}
        results = self.model(feed)
        return [np.asarray(results[self.outputs[name]])
                for name in (outputs or self.output_names)]


def open_session(onnx_file: str, backend: str = DEFAULT_BACKEND,
                 threads: Optional[int] = None) -> RuntimeSession:
    """``onnx_file`` opened in ``backend`` (``'onnxruntime'`` or ``'openvino'``)."""
    check_backend(backend)
    sessions = {'onnxruntime': OnnxruntimeSession, 'openvino': OpenVINOSession}
    return sessions[backend](onnx_file, threads)


def graph_input_shape(meta: Dict[str, Any]) -> List[Union[int, str]]:
    """The ``input`` shape the file was exported for: ints where fixed, names where any."""
    return list(meta.get('input', {}).get('shape') or ['batch', 3, 'height', 'width'])


def graph_batch_size(meta: Dict[str, Any]) -> Optional[int]:
    """The batch size a static graph takes (``None``: any)."""
    batch = graph_input_shape(meta)[0]
    return batch if isinstance(batch, int) else None


def check_input_shape(meta: Dict[str, Any], shape: Sequence[int], onnx_file: str) -> None:
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
