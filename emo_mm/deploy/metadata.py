"""What an exported ``.onnx`` records about itself, and the checks made when it is loaded.

Every file carries, as ONNX ``metadata_props`` (keys ``emo_mm.*``, JSON values):

* ``task``: ``'detection'`` or ``'segmentation'``; ``family``: the model type (``SSD``...);
* ``input``: the input convention (:func:`input_convention`) with the config's ``mean``/``std``:
  a float32 ``(N, 3, H, W)`` batch, in the config's channel order (``channels``: RGB when its
  ``data_preprocessor`` has ``bgr_to_rgb=True``, else BGR), normalised ``(pixel - mean) / std`` by the config's
  ``data_preprocessor`` (which the runtime wrappers run); ``shape`` ``[1, 3, H, W]`` for a
  static graph (that size only) or ``['batch', 3, 'height', 'width']`` (any), ``dynamic``;
  detection graphs add ``img_shape`` (:data:`IMG_SHAPE_CONVENTION`);
* ``inputs``: the graph's input names (``['input', 'img_shape']`` for detection);
* ``outputs``: the output names; ``model``: the config's ``model`` dict without its
  training-only keys (:func:`model_fingerprint`), which a config must match to run the file;
* ``dataset_meta``: class names (and palette) for the results and the visualisers;
* ``config``, ``checkpoint``, ``opset``, ``shape``: where and how it was exported.
"""
import json
from pathlib import Path
from typing import Any, Dict, List, Optional

from .errors import DeployError

PREFIX = 'emo_mm.'
FORMAT_VERSION = 1
INPUT_CONVENTION = ('float32 NCHW ({sizes}), {channels}, normalised: (pixel - mean) / std '
                    'with the config\'s data_preprocessor mean/std; detection boxes come out in '
                    'input pixels')
# Detection graphs' second input (shared by every detection graph of emo_mm.deploy).
IMG_SHAPE_CONVENTION = ('img_shape: int64 (N, 2), rows (height, width) of each image inside '
                        'the padded batch (mmdet\'s metainfo img_shape); boxes are clipped to '
                        'it before NMS, as mmdet does. Optional (an overridable initializer): '
                        'not fed, every image fills the input')


def channel_order(preprocessor: Dict[str, Any]) -> str:
    """``'RGB'`` or ``'BGR'``: the channel order of the batches a config's
    ``data_preprocessor`` makes. The images are loaded BGR (mmcv); ``bgr_to_rgb`` (or its
    alias ``rgb_to_bgr``) flips them."""
    flipped = bool(preprocessor.get('bgr_to_rgb') or preprocessor.get('rgb_to_bgr'))
    return 'RGB' if flipped else 'BGR'


def input_convention(static: bool, channels: str = 'RGB') -> str:
    """The ``input`` convention of every graph, in words; ``channels``:
    :func:`channel_order`."""
    sizes = ('batch 1, the exported height and width only' if static else
             'any batch, height, width')
    return INPUT_CONVENTION.format(sizes=sizes, channels=channels)


# Keys that change training only, never what an exported graph computes.
TRAINING_ONLY_KEYS = frozenset({
    'init_cfg', 'pretrained', 'train_cfg', 'norm_eval', 'frozen_stages', 'drop_path_rate',
    'with_cp', 'loss_cls', 'loss_bbox', 'loss_decode', 'sampler', 'assigner', 'batch_augments',
    'auxiliary_head'})


# Norms that compute the same at inference (and that tools switch between on CPU machines).
SAME_AT_INFERENCE = {'SyncBN': 'BN', 'MMSyncBN': 'BN', 'BN2d': 'BN'}


def _plain(value: Any) -> Any:
    """Config values as JSON-comparable data (tuples become lists)."""
    if isinstance(value, dict):
        out = {str(k): _plain(v) for k, v in value.items() if k not in TRAINING_ONLY_KEYS}
        if out.get('type') in SAME_AT_INFERENCE:
            out['type'] = SAME_AT_INFERENCE[out['type']]
        return out
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return repr(value)


def model_fingerprint(model_cfg: dict) -> Dict[str, Any]:
    """The parts of a config's ``model`` dict that decide what the exported graph computes."""
    return _plain(dict(model_cfg))


def differences(exported: Any, current: Any, path: str = 'model') -> List[str]:
    """Human-readable differences between two fingerprints, e.g.
    ``model.bbox_head.num_classes: exported 3, config 80``."""
    if isinstance(exported, dict) and isinstance(current, dict):
        out = []
        for key in sorted(set(exported) | set(current)):
            if key not in current:
                out.append(f'{path}.{key}: exported {exported[key]!r}, config has none')
            elif key not in exported:
                out.append(f'{path}.{key}: exported without it, config {current[key]!r}')
            else:
                out += differences(exported[key], current[key], f'{path}.{key}')
        return out
    if isinstance(exported, list) and isinstance(current, list) and \
            len(exported) == len(current):
        return [d for i, (e, c) in enumerate(zip(exported, current))
                for d in differences(e, c, f'{path}[{i}]')]
    return [] if exported == current else [f'{path}: exported {exported!r}, config {current!r}']


def write_metadata(onnx_file: str, meta: Dict[str, Any],
                   input_defaults: Optional[Dict[str, Any]] = None) -> None:
    """Stores ``meta`` (JSON values) as ``emo_mm.*`` metadata_props of ``onnx_file``.

    ``input_defaults``: ``{input name: value}`` for inputs that become optional: the value is
    stored as an initializer of the same name, which onnxruntime uses unless the input is fed
    (``session.get_overridable_initializers()`` lists them).
    """
    import numpy as np
    import onnx
    from onnx import numpy_helper
    model = onnx.load(onnx_file)
    for name, value in (input_defaults or {}).items():
        declared = {i.name: i for i in model.graph.input}[name]
        dtype = onnx.helper.tensor_dtype_to_np_dtype(declared.type.tensor_type.elem_type)
        model.graph.initializer.append(numpy_helper.from_array(np.asarray(value, dtype), name))
    del model.metadata_props[:]
    for key, value in {'format': FORMAT_VERSION, **meta}.items():
        prop = model.metadata_props.add()
        prop.key, prop.value = PREFIX + key, json.dumps(value)
    onnx.save(model, onnx_file)


def read_metadata(onnx_file: str, with_session: bool = True,
                  backend: str = 'onnxruntime') -> Dict[str, Any]:
    """The ``emo_mm.*`` metadata of an exported file, checked to exist and to be ours.

    ``with_session``: also open it in ``backend`` (``'onnxruntime'`` or ``'openvino'``; which
    proves the graph loads) and return that :class:`~emo_mm.deploy.session.RuntimeSession` as
    ``meta['session']`` (the one the runtime wrappers use); otherwise only the file is parsed
    (``onnx``), for checks made before a model is built.
    """
    path = Path(onnx_file)
    if not path.is_file():
        raise DeployError(f'ONNX file {onnx_file!r} does not exist; export one with '
                          '`python tools/export_onnx.py CONFIG CHECKPOINT --out FILE.onnx`')
    session = None
    if with_session:
        from .session import open_session
        session = open_session(onnx_file, backend)
        props = session.metadata
    else:
        props = _file_metadata(onnx_file)
    meta = {k[len(PREFIX):]: json.loads(v) for k, v in props.items() if k.startswith(PREFIX)}
    if meta.get('format') != FORMAT_VERSION or 'task' not in meta:
        raise DeployError(f'{onnx_file!r} is an ONNX model, but not one exported by '
                          'tools/export_onnx.py (no emo_mm metadata: task, input convention, '
                          'config); export it with `python tools/export_onnx.py CONFIG '
                          'CHECKPOINT --out FILE.onnx`')
    if session is not None:
        meta['session'] = session
    return meta


def _file_metadata(onnx_file: str) -> Dict[str, str]:
    """``metadata_props`` of an ONNX file, parsed without a runtime (weights not copied)."""
    try:
        import onnx
        model = onnx.load(onnx_file, load_external_data=False)
    except ImportError as exc:
        raise DeployError('reading .onnx files needs onnx: `pip install emo-mm[deploy]` (or '
                          '`pip install onnx onnxruntime`)') from exc
    except Exception as exc:  # protobuf's DecodeError, or onnx's own checks
        raise DeployError(f'{onnx_file!r} is not a loadable ONNX model ({exc}); re-export it '
                          'with `python tools/export_onnx.py CONFIG CHECKPOINT --out FILE.onnx`'
                          ) from exc
    return {prop.key: prop.value for prop in model.metadata_props}


def dataset_meta(meta: Dict[str, Any]) -> Dict[str, Any]:
    """The file's ``dataset_meta`` as the frameworks hold it: ``classes`` a tuple of names,
    ``palette`` a list of RGB tuples; ``None`` when the export knew no classes."""
    stored = meta.get('dataset_meta') or {}
    out = {}
    if stored.get('classes'):
        out['classes'] = tuple(stored['classes'])
    if stored.get('palette'):
        out['palette'] = [tuple(colour) for colour in stored['palette']]
    return out or None


def check_matches_config(meta: Dict[str, Any], model_cfg: dict, onnx_file: str,
                         config_name: str) -> None:
    """Raises :class:`DeployError` naming every difference if ``onnx_file`` was exported from
    a model config other than ``model_cfg``."""
    diffs = differences(meta['model'], model_fingerprint(model_cfg))
    if diffs:
        shown = '\n  '.join(diffs[:10]) + (f'\n  ... {len(diffs) - 10} more'
                                          if len(diffs) > 10 else '')
        raise DeployError(
            f'{onnx_file!r} was exported from a different config ({meta.get("config")!r}) '
            f'than {config_name!r}; the models differ at:\n  {shown}\n'
            f'Use the config it was exported from, or re-export: `python tools/export_onnx.py '
            f'{config_name} CHECKPOINT --out FILE.onnx`')
