"""What an exported ``.onnx`` records about itself, and the checks made when it is loaded.

Every file carries, as ONNX ``metadata_props`` (keys ``emo_mm.*``, JSON values):

* ``task``: ``'detection'`` or ``'segmentation'``; ``family``: the model type (``SSD``...);
* ``input``: the input convention, :data:`INPUT_CONVENTION` with the config's ``mean``/``std``:
  a float32 ``(N, 3, H, W)`` batch, RGB, normalised ``(pixel - mean) / std`` by the config's
  ``data_preprocessor`` (which the runtime wrappers run); any batch, height and width;
* ``outputs``: the output names; ``model``: the config's ``model`` dict without its
  training-only keys (:func:`model_fingerprint`), which a config must match to run the file;
* ``dataset_meta``: class names (and palette) for the results and the visualisers;
* ``config``, ``checkpoint``, ``opset``, ``shape``: where and how it was exported.
"""
import json
from pathlib import Path
from typing import Any, Dict, List

from .errors import DeployError

PREFIX = 'emo_mm.'
FORMAT_VERSION = 1
INPUT_CONVENTION = ('float32 NCHW (any batch, height, width), RGB, normalised: '
                    '(pixel - mean) / std with the config\'s data_preprocessor mean/std; '
                    'detection boxes come out in input pixels')
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


def write_metadata(onnx_file: str, meta: Dict[str, Any]) -> None:
    """Stores ``meta`` (JSON values) as ``emo_mm.*`` metadata_props of ``onnx_file``."""
    import onnx
    model = onnx.load(onnx_file)
    del model.metadata_props[:]
    for key, value in {'format': FORMAT_VERSION, **meta}.items():
        prop = model.metadata_props.add()
        prop.key, prop.value = PREFIX + key, json.dumps(value)
    onnx.save(model, onnx_file)


def read_metadata(onnx_file: str) -> Dict[str, Any]:
    """The ``emo_mm.*`` metadata of an exported file, checked to exist and to be ours.

    Reads only the file's metadata (through onnxruntime, which also proves the graph loads).
    """
    path = Path(onnx_file)
    if not path.is_file():
        raise DeployError(f'ONNX file {onnx_file!r} does not exist; export one with '
                          '`python tools/export_onnx.py CONFIG CHECKPOINT --out FILE.onnx`')
    from .session import create_session
    session = create_session(onnx_file)
    props = session.get_modelmeta().custom_metadata_map
    meta = {k[len(PREFIX):]: json.loads(v) for k, v in props.items() if k.startswith(PREFIX)}
    if meta.get('format') != FORMAT_VERSION or 'task' not in meta:
        raise DeployError(f'{onnx_file!r} is an ONNX model, but not one exported by '
                          'tools/export_onnx.py (no emo_mm metadata: task, input convention, '
                          'config); export it with `python tools/export_onnx.py CONFIG '
                          'CHECKPOINT --out FILE.onnx`')
    meta['session'] = session
    return meta


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
