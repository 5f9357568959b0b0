"""Export an emo-mm (or any mmdet / mmseg) model to one self-contained ``.onnx`` file.

Plain ``torch.onnx.export`` with the TorchScript exporter (``dynamo=False``; it keeps batch,
height and width symbolic from one example, or fixes them for a static graph), on the inference
form of the backbone (``switch_to_deploy``: BatchNorm folded) written as the graph should run it
(:mod:`emo_mm.deploy.emo_graph`: the same function, fewer layout and shape operations).
Supported: mmdet single-stage anchor detectors (SSD/SSDLite, RetinaNet), two-stage detectors
(Faster / Mask R-CNN: :mod:`emo_mm.deploy.two_stage`) and mmseg ``EncoderDecoder`` segmentors
(DeepLabv3, PSPNet, Semantic FPN, ...).
"""
import copy
from pathlib import Path
from typing import Any, Dict, Optional, Tuple, Union

from mmengine.config import Config
from torch import nn

from ..registries import SCOPES, registry, scope_of_task
from .errors import DeployError
from .emo_graph import export_form
from .graphs import DetectionGraph, SegmentationGraph, unsupported_detector_settings
from .exportable import ExportableGraph
from .input_size import fixed_input_size
from .tracing import trace_to_onnx
from .metadata import (IMG_SHAPE_CONVENTION, channel_order, input_convention,
                       model_fingerprint, write_metadata)

DEFAULT_OPSET = 17
SUPPORTED = ('mmdet single-stage anchor detectors with DeltaXYWHBBoxCoder (SSD/SSDLite, '
             'RetinaNet), mmdet two-stage detectors with RPNHead and StandardRoIHead (Faster '
             'R-CNN, Mask R-CNN) and mmseg EncoderDecoder segmentors (DeepLabv3, PSPNet, '
             'Semantic FPN)')


def load_config(config: Union[str, Config]) -> Config:
    """A config file, or a framework's own (``mmdet::ssd/...py``), or a loaded Config."""
    if isinstance(config, Config):
        return config
    if '::' in config:  # a config shipped inside mmdet / mmseg (their .mim/configs)
        import importlib
        package, relative = config.split('::', 1)
        config = str(Path(importlib.import_module(package).__file__).parent / '.mim' /
                     'configs' / relative)
    if not Path(config).is_file():
        raise DeployError(f'config file {config!r} does not exist')
    return Config.fromfile(config)


def task_of(cfg: Config, config_name: str = 'the config') -> str:
    """``'detection'`` or ``'segmentation'`` for a supported model config; otherwise a
    :class:`DeployError` naming the family and what is supported."""
    scope = cfg.get('default_scope')
    model_type = cfg.get('model', {}).get('type')
    cls = (registry(scope).get(model_type) if scope in SCOPES and isinstance(model_type, str)
           else None)
    if scope == 'mmdet':
        from mmdet.models.detectors import SingleStageDetector, TwoStageDetector
        if cls is not None and issubclass(cls, TwoStageDetector):
            from .two_stage import check_config  # Faster / Mask R-CNN (RPN + StandardRoIHead)
            check_config(cfg.model, config_name)
            return 'detection'
        if cls is not None and issubclass(cls, SingleStageDetector):
            return 'detection'
    elif scope == 'mmseg':
        from mmseg.models.segmentors import CascadeEncoderDecoder, EncoderDecoder
        if cls is not None and issubclass(cls, EncoderDecoder) and \
                not issubclass(cls, CascadeEncoderDecoder):
            return 'segmentation'
    raise DeployError(f'{config_name} builds a {model_type!r} model (default_scope '
                      f'{scope!r}), a family ONNX export does not know; supported: {SUPPORTED}')


def load_checkpoint_strict(model: nn.Module, checkpoint: str, config_name: str) -> dict:
    """Loads ``checkpoint`` into ``model``, refusing one whose keys or shapes do not fit
    (:func:`emo_mm.checkpoint_fit.fitting_state_dict`); returns the checkpoint's ``meta``
    (``{}`` if none)."""
    from ..checkpoint_fit import fitting_state_dict
    state, loaded = fitting_state_dict(model, checkpoint, config_name)
    model.load_state_dict(state)
    meta = loaded.get('meta')
    return meta if isinstance(meta, dict) else {}


def dataset_meta_of(cfg: Config, checkpoint_meta: dict, task: str) -> Dict[str, Any]:
    """Class names and palette: the checkpoint's ``dataset_meta``, else the config's test
    dataset's (:func:`test_dataset_meta`)."""
    meta = checkpoint_meta.get('dataset_meta') or test_dataset_meta(cfg, task)
    return {k: [list(x) if isinstance(x, (list, tuple)) else x for x in v]
            for k, v in meta.items() if k in ('classes', 'palette') and v is not None}


def test_dataset_meta(cfg: Config, task: str) -> Dict[str, Any]:
    """The config's test dataset's ``metainfo`` as the framework's dataset class makes it
    (its ``METAINFO`` updated by the config's ``metainfo``, a palette fitting the classes),
    built without reading its annotations (``lazy_init``); ``{}`` without a test dataset."""
    dataset = copy.deepcopy(cfg.get('test_dataloader', {}).get('dataset', {}))
    if not dataset.get('type'):
        return {}
    DATASETS = registry(scope_of_task(task), 'DATASETS')
    from mmengine.registry import DefaultScope
    dataset.update(lazy_init=True, pipeline=[])  # the metainfo only
    with DefaultScope.overwrite_default_scope(cfg.get('default_scope')):
        try:
            return dict(DATASETS.build(dataset).metainfo)
        except Exception:  # a dataset that needs more than its config to be built
            cls = DATASETS.get(dataset['type'])
            meta = dict(getattr(cls, 'METAINFO', {}) or {})
            meta.update(dataset.get('metainfo') or {})
            classes = meta.get('classes')
            if classes and len(meta.get('palette') or []) != len(classes):
                meta.pop('palette', None)  # one that does not fit the classes: none
            return meta


def build_deploy_model(config: Union[str, Config], checkpoint: Optional[str] = None,
                       deploy_form: bool = True) -> Tuple[Config, str, nn.Module, dict]:
    """``(cfg, task, model, dataset_meta)``: the config's model in eval mode with the
    checkpoint's weights (none: PyTorch's default initialisation, no download), its
    backbone in the inference form when it has one."""
    config_name = config if isinstance(config, str) else (config.filename or 'the config')
    cfg = load_config(config)
    task = task_of(cfg, config_name)
    from mmengine.registry import init_default_scope
    init_default_scope(cfg.default_scope)
    model_cfg = copy.deepcopy(cfg.model)
    if checkpoint is None:  # no download: the weights are random anyway
        model_cfg.get('backbone', {}).pop('init_cfg', None)
    model = registry(scope_of_task(task)).build(model_cfg)
    checkpoint_meta = {}
    if checkpoint is not None:
        checkpoint_meta = load_checkpoint_strict(model, checkpoint, config_name)
    model.eval()
    if deploy_form and hasattr(model.backbone, 'switch_to_deploy'):
        model.backbone.switch_to_deploy()
    return cfg, task, model, dataset_meta_of(cfg, checkpoint_meta, task)


def export_onnx(config: Union[str, Config], checkpoint: Optional[str], out: str,
                shape: Tuple[int, int] = None, opset: int = DEFAULT_OPSET,
                dynamic: Optional[bool] = None) -> Dict[str, Any]:
    """Exports the model of ``config`` with ``checkpoint``'s weights to ``out``; returns the
    metadata stored in the file (see :mod:`emo_mm.deploy.metadata`).

    ``checkpoint=None`` exports PyTorch's default initialisation (for tests and timing).
    ``dynamic``: ``None`` (default) decides by the config: a *static* graph (batch 1, the one
    size, no shape arithmetic) when its test pipeline resizes every image to one size
    (:func:`~emo_mm.deploy.input_size.fixed_input_size`; SSDLite: 320x320), else a *dynamic*
    one (any batch, height and width). ``shape``: ``(H, W)`` traced (dynamic default: 320x320
    for detection, the config's crop size or 512x512 for segmentation); a static graph takes
    the config's size, and another ``shape`` is refused.
    """
    cfg, task, model, dataset_meta = build_deploy_model(config, checkpoint)
    name = Path(config).name if isinstance(config, str) else Path(cfg.filename or '').name
    fixed = fixed_input_size(cfg)
    if dynamic is None:
        dynamic = fixed is None
    if not dynamic:
        if fixed is None:
            raise DeployError(f'{name} keeps the aspect ratio in its test pipeline, so its '
                              'images have no one size: export it dynamic')
        if shape is not None and tuple(shape) != fixed:
            raise DeployError(f'{name}\'s test pipeline resizes every image to '
                              f'{fixed[0]}x{fixed[1]}, so its static graph takes that size, not '
                              f'{shape[0]}x{shape[1]}; trace another size with --dynamic')
        shape = fixed
    return export_model(cfg, task, model, out, shape=shape, opset=opset,
                        dataset_meta=dataset_meta, config_name=name,
                        checkpoint_name=Path(checkpoint).name if checkpoint else None,
                        dynamic=dynamic)


def build_graph(task: str, model: nn.Module, static: bool) -> ExportableGraph:
    """The graph of an eval-mode ``model`` (a copy, its backbone in the export form of
    :mod:`emo_mm.deploy.emo_graph`: the same function): detection (single- or two-stage) or
    segmentation; a :class:`DeployError` names what it does not compute as mmdet / mmseg do."""
    from .two_stage import TwoStageGraph, is_two_stage
    form = export_form(copy.deepcopy(model), static=static)
    if task == 'segmentation':
        return SegmentationGraph(form, static=static)
    if is_two_stage(model):
        return TwoStageGraph(form, static=static)
    head = model.bbox_head
    problems = unsupported_detector_settings(head)
    if problems:
        raise DeployError(f'{type(head).__name__} with ' + '; '.join(problems) +
                          f' is not supported for ONNX export; supported: {SUPPORTED}')
    return DetectionGraph(form, static=static)


def export_model(cfg: Config, task: str, model: nn.Module, out: str,
                 shape: Tuple[int, int] = None, opset: int = DEFAULT_OPSET,
                 dataset_meta: Optional[dict] = None, config_name: Optional[str] = None,
                 checkpoint_name: Optional[str] = None, dynamic: bool = True) -> Dict[str, Any]:
    """Exports an eval-mode ``model`` built from ``cfg`` (its backbone switched to the
    deploy form here if it is not yet), every family the same way; see :func:`export_onnx`.
    ``dynamic=False`` traces batch 1 at ``shape`` (default: the config's fixed size) for that
    size only; ``dynamic=True`` traces ``shape`` (default: the graph's) and leaves batch,
    height and width free."""
    model.eval()
    if hasattr(model.backbone, 'switch_to_deploy') and not getattr(model.backbone, 'deployed',
                                                                   True):
        model.backbone.switch_to_deploy()
    static = not dynamic
    graph = build_graph(task, model, static).eval()
    if opset < graph.min_opset:
        raise DeployError(f'opset {opset} < {graph.min_opset}: {graph.opset_reason}')
    if static and shape is None:
        shape = fixed_input_size(cfg)
    shape = tuple(shape or graph.default_shape(cfg))
    trace_to_onnx(graph, graph.example_inputs(shape), str(out), graph.input_names,
                  graph.output_names, graph.dynamic_axes(), opset)
    preprocessor = cfg.model.get('data_preprocessor', {})
    channels = channel_order(preprocessor)
    input_meta = dict(
        convention=input_convention(static, channels) + graph.convention(), name='input',
        dtype='float32', layout='NCHW',
        shape=[1, 3, *shape] if static else ['batch', 3, 'height', 'width'], dynamic=dynamic,
        channels=channels, mean=list(preprocessor.get('mean') or [0, 0, 0]),
        std=list(preprocessor.get('std') or [1, 1, 1]), normalised_in_graph=False)
    if 'img_shape' in graph.input_names:
        input_meta['img_shape'] = IMG_SHAPE_CONVENTION
    meta = dict(task=task, family=cfg.model.type, config=config_name,
                checkpoint=checkpoint_name, input=input_meta, inputs=list(graph.input_names),
                outputs=list(graph.output_names), model=model_fingerprint(cfg.model),
                dataset_meta=dataset_meta or {}, opset=opset, shape=list(shape),
                deploy_form=bool(getattr(model.backbone, 'deployed', False)),
                **graph.metadata())
    write_metadata(str(out), meta, input_defaults=graph.input_defaults(shape))
    return meta
