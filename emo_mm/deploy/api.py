"""Running exported models through the frameworks' own APIs and tools."""
import importlib
from pathlib import Path
from typing import Optional, Union

from mmengine.config import Config, ConfigDict

from ..registries import registry
from .errors import DeployError
from .export import load_config, task_of, test_dataset_meta
from .metadata import check_matches_config, dataset_meta, read_metadata
from .session import DEFAULT_BACKEND, import_runtime

WRAPPERS = {'detection': 'OnnxDetector', 'segmentation': 'OnnxSegmentor'}


# The modules that register each task's wrappers (in the framework's MODELS registry).
WRAPPER_MODULES = {'detection': ['emo_mm.deploy.single_stage_detector',
                                 'emo_mm.deploy.two_stage_detector'],
                   'segmentation': ['emo_mm.deploy.segmentor']}


def _register(task: str) -> None:
    for module in WRAPPER_MODULES[task]:
        importlib.import_module(module)


def check_same_classes(meta: dict, cfg: Config, task: str, onnx_file: str,
                       config_name: str) -> None:
    """Raises :class:`DeployError` when the file's class names are not those of the config's
    test dataset, which ``tools/test.py`` evaluates and draws with (the model, in every door,
    keeps the file's)."""
    ours = (dataset_meta(meta) or {}).get('classes')
    theirs = test_dataset_meta(cfg, task).get('classes')
    if ours and theirs and tuple(ours) != tuple(theirs):
        raise DeployError(f'{onnx_file!r} names its {len(ours)} classes {list(ours)}, but the '
                          f'test dataset of {config_name} names them {list(theirs)}; set the '
                          'dataset\'s metainfo=dict(classes=...) in the config to the file\'s '
                          'names, or export the file from this config and its checkpoint')


def use_onnx_model(cfg: Config, onnx_file: str, backend: str = DEFAULT_BACKEND) -> None:
    """Makes ``cfg`` (a loaded config) build a model of ``onnx_file`` run by ``backend``
    (``'onnxruntime'`` or ``'openvino'``) in place of its PyTorch model, for ``tools/test.py
    CONFIG FILE.onnx [--backend openvino]`` and the frameworks' inferencers.

    ``cfg.model`` becomes ``OnnxDetector`` / ``OnnxSegmentor`` with the config's
    ``data_preprocessor`` (and ``test_cfg``) and ``backend``, ``cfg.load_from`` becomes
    ``None``. Raises :class:`DeployError` for a runtime not installed (naming its install), a
    missing or unreadable file, one not exported by
    ``tools/export_onnx.py``, one exported from a config whose model differs, or one whose
    class names are not the config's test dataset's.
    """
    config_name = cfg.filename or 'the config'
    if cfg.get('launcher', 'none') not in (None, 'none'):
        raise DeployError('an .onnx model is evaluated in one process: run '
                          '`python tools/test.py CONFIG FILE.onnx` without --launcher '
                          '(not tools/dist_test.sh)')
    import_runtime(backend)  # a runtime not installed: said first, naming its install
    task = task_of(cfg, config_name)
    meta = read_metadata(onnx_file, with_session=False)  # the model opens the one session
    if meta['task'] != task:
        raise DeployError(f'{onnx_file!r} holds a {meta["task"]} model but {config_name} is a '
                          f'{task} config; use the config it was exported from '
                          f'({meta.get("config")!r})')
    check_matches_config(meta, cfg.model, onnx_file, config_name)
    check_same_classes(meta, cfg, task, onnx_file, config_name)
    _register(task)
    wrapper = dict(type=meta.get('wrapper', WRAPPERS[task]),  # two-stage files name theirs
                   onnx_file=str(Path(onnx_file).resolve()),
                   data_preprocessor=cfg.model.get('data_preprocessor'), backend=backend)
    if task == 'segmentation':
        wrapper['test_cfg'] = cfg.model.get('test_cfg')
    cfg.model = ConfigDict(wrapper)
    cfg.load_from = None
    # Any process that re-reads the config (a dump of it) imports the wrappers too.
    imports = list(cfg.get('custom_imports', {}).get('imports', []))
    missing = [module for module in WRAPPER_MODULES[task] if module not in imports]
    if missing:
        cfg.custom_imports = dict(imports=imports + missing, allow_failed_imports=False)


def init_onnx_model(config: Union[str, Config], onnx_file: str,
                    cfg_options: Optional[dict] = None, backend: str = DEFAULT_BACKEND):
    """A model of ``onnx_file`` for mmdet's ``inference_detector`` / mmseg's
    ``inference_model`` and the frameworks' visualisers, run on the CPU by ``backend``
    (``'onnxruntime'``, or ``'openvino'``: ``pip install emo-mm[openvino]``).

    ``config``: the config it was exported from (its test pipeline prepares the images).
    """
    cfg = load_config(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    use_onnx_model(cfg, onnx_file, backend)
    from mmengine.registry import init_default_scope
    init_default_scope(cfg.default_scope)
    model = registry(cfg.default_scope).build(cfg.model)
    model.cfg = cfg  # the inference APIs read the test pipeline from it
    return model.eval()
