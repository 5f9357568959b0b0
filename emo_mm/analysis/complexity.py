"""Parameters and FLOPs of any emo-mm config (mmdet or mmseg), with two FLOP counters.

The counts need neither a dataset nor a checkpoint: the model is built from the config without
``init_weights`` and run on one random image. Both counters count multiply-accumulates:

* ``hook``: mmcv's module-hook counter (``mmcv.cnn.get_model_complexity_info``), the counter
  behind the EMO paper's downstream figures. It counts the modules it knows (convolutions,
  linear, BatchNorm/LayerNorm, ReLU family, pooling) and misses functional ops, so the
  window-attention matmuls add nothing.
* ``jit``: mmengine's jit-trace counter (``mmengine.analysis``, fvcore's method), which also
  counts functional matmuls and gives higher figures.

Segmentors run their inference path (backbone + decode head; the auxiliary head only trains),
detectors backbone + neck + head without post-processing: the ``mode='tensor'`` forward. Two-stage
detectors (Mask R-CNN) need each image's metadata there: they get a data sample of the input's
shape, and their RoI heads run on the RPN's proposals (up to 1000 boxes; the mask head on the
first 100), as in mmdet's own ``get_flops``. The random weights are seeded, so these
data-dependent counts are the same every run.
"""
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch
from mmengine.config import Config
from mmengine.registry import MODELS, init_default_scope
from torch import nn

from ..config_options import framework_of

COUNTERS = ('hook', 'jit')


@dataclass
class Complexity:
    """What :func:`model_complexity` measured; FLOPs are multiply-accumulates, None if not run."""
    config: str
    scope: str
    model_type: str
    input_shape: Tuple[int, int]  # (H, W)
    params: int  # every parameter of the model as built (a segmentor's auxiliary head included)
    hook_flops: Optional[int] = None
    jit_flops: Optional[int] = None
    # params without a segmentor's auxiliary head (it only trains): the papers' figure
    inference_params: Optional[int] = None

    def summary(self) -> str:
        """A few human-readable lines saying which figure comes from which counter."""
        h, w = self.input_shape
        lines = [
            f'config:      {self.config} ({self.scope}, {self.model_type})',
            f'input shape: 1 x 3 x {h} x {w} (N x C x H x W)',
            f'parameters:  {self.params:,} ({self.params / 1e6:.3f} M), the whole model as built',
        ]
        if self.inference_params not in (None, self.params):
            lines.append(f'             {self.inference_params:,} '
                         f'({self.inference_params / 1e6:.3f} M) without the auxiliary head')
        lines.append('FLOPs (multiply-accumulates, one image):')
        if self.hook_flops is not None:
            lines.append(f'  module-hook counter (mmcv.cnn.get_model_complexity_info, as in the '
                         f'EMO paper): {self.hook_flops / 1e9:.3f} G')
        if self.jit_flops is not None:
            lines.append(f'  jit-trace counter (mmengine.analysis, also counts functional '
                         f'matmuls): {self.jit_flops / 1e9:.3f} G')
        return '\n'.join(lines)


def _load(config: Union[str, Config, dict]) -> Tuple[Config, str]:
    if isinstance(config, str):
        return Config.fromfile(config), config
    cfg = config if isinstance(config, Config) else Config(config)
    return cfg, cfg.filename or '<config dict>'


def _test_pipeline(cfg: Config) -> Sequence[dict]:
    """The test dataloader's pipeline, looking through dataset wrappers."""
    dataset = cfg.get('test_dataloader', {}).get('dataset', {})
    while 'pipeline' not in dataset and 'dataset' in dataset:
        dataset = dataset['dataset']
    return dataset.get('pipeline') or cfg.get('test_pipeline') or []


def default_input_shape(config: Union[str, Config, dict]) -> Tuple[int, int]:
    """The paper's analysis shape ``(H, W)`` for a config.

    Segmentation: the training crop (the data preprocessor's ``size``, 512x512 for ADE20K).
    Detection: the test ``Resize`` scale, given by mmcv as ``(W, H)`` (320x320 for SSDLite,
    800x1333 for RetinaNet's ``(1333, 800)``).
    """
    cfg, name = _load(config)
    if framework_of(cfg) == 'mmseg':
        size = cfg.model.get('data_preprocessor', {}).get('size') or cfg.get('crop_size')
        if size is not None:
            return int(size[0]), int(size[1])
    else:
        scales = [t['scale'] for t in _test_pipeline(cfg)
                  if t.get('type') == 'Resize' and t.get('scale') is not None]
        if scales:
            w, h = (scales[-1], scales[-1]) if isinstance(scales[-1], int) else scales[-1]
            return int(h), int(w)
    raise ValueError(f'{name}: no input size found (segmentation: model.data_preprocessor.size '
                     f'or crop_size; detection: a Resize with a scale in the test pipeline); '
                     f'give one, e.g. --shape 512 512')


def _sync_bn_to_bn2d(module: nn.Module) -> nn.Module:
    """Replaces every ``nn.SyncBatchNorm`` by an ``nn.BatchNorm2d`` with the same state.

    mmcv's hook counter matches exact module types and knows ``nn.BatchNorm2d`` but neither
    ``SyncBatchNorm`` nor the ``_BatchNormXd`` of mmengine's ``revert_sync_batchnorm``: both
    would leave the BatchNorm FLOPs (about 25 M for DeepLabv3-EMO-1M) uncounted.
    """
    if isinstance(module, nn.SyncBatchNorm):
        bn = nn.BatchNorm2d(module.num_features, module.eps, module.momentum, module.affine,
                            module.track_running_stats)
        bn.load_state_dict(module.state_dict())
        return bn
    for name, child in module.named_children():
        module.add_module(name, _sync_bn_to_bn2d(child))
    return module


def build_model(config: Union[str, Config, dict]) -> nn.Module:
    """The config's model in eval mode, with random weights (no ``init_weights``, no download).

    SyncBN becomes BatchNorm2d: one process runs it, and mmcv's hook counter needs that type.
    """
    cfg, _ = _load(config)
    init_default_scope(framework_of(cfg))
    return _sync_bn_to_bn2d(MODELS.build(cfg.model)).eval()


def _sdpa_flop_jit(inputs: List[Any], outputs: List[Any]) -> int:
    """``F.scaled_dot_product_attention``: ``q @ k^T`` plus ``attn @ v`` multiply-accumulates.

    mmengine has no handle for this fused op (EMO's window attention uses it); the count is
    what it gives for the equivalent explicit ``matmul`` pair.
    """
    from mmengine.analysis.jit_handles import get_shape
    q, k, v = (get_shape(x) for x in inputs[:3])
    batch_heads_queries = q[0] * q[1] * q[2]
    return batch_heads_queries * k[2] * (q[3] + v[3])


def _data_samples(scope: str, image: torch.Tensor) -> Optional[List[Any]]:
    """The data samples a detector's tensor forward reads: one per image, the input's shape
    with no resizing (two-stage detectors need them; the others ignore them). None for mmseg."""
    if scope != 'mmdet':
        return None
    from mmdet.structures import DetDataSample
    shape = tuple(image.shape[-2:])
    return [DetDataSample(metainfo=dict(img_shape=shape, ori_shape=shape, pad_shape=shape,
                                        batch_input_shape=shape, scale_factor=(1., 1.)))
            for _ in range(image.shape[0])]


class _WithSamples(nn.Module):
    """``model(image, data_samples)`` as a module of the image alone, for the jit tracer."""

    def __init__(self, model: nn.Module, data_samples: Optional[List[Any]]) -> None:
        super().__init__()
        self.model = model
        self.data_samples = data_samples

    def forward(self, image: torch.Tensor) -> Any:
        return self.model(image, self.data_samples)


def _hook_count(model: nn.Module, image: torch.Tensor,
                data_samples: Optional[List[Any]] = None) -> int:
    from mmcv.cnn import get_model_complexity_info
    flops, _ = get_model_complexity_info(
        model, tuple(image.shape[1:]),
        input_constructor=lambda _: dict(inputs=image, data_samples=data_samples),
        print_per_layer_stat=False, as_strings=False)
    return int(flops)


def _jit_count(model: nn.Module, image: torch.Tensor,
               data_samples: Optional[List[Any]] = None) -> int:
    from mmengine.analysis import FlopAnalyzer
    analyzer = FlopAnalyzer(_WithSamples(model, data_samples), (image, ))
    analyzer.set_op_handle('aten::scaled_dot_product_attention', _sdpa_flop_jit)
    analyzer.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    return int(analyzer.total())


_COUNTER_FNS = {'hook': _hook_count, 'jit': _jit_count}


def model_complexity(config: Union[str, Config, dict],
                     shape: Optional[Sequence[int]] = None,
                     counters: Sequence[str] = COUNTERS) -> Complexity:
    """Counts parameters and FLOPs of a config's model.

    Args:
        config: a config path, :class:`Config` or dict (mmdet or mmseg ``default_scope``).
        shape: input ``(H, W)`` or ``(S, )`` for a square; defaults to
            :func:`default_input_shape`.
        counters: which FLOP counters to run, any of :data:`COUNTERS`.

    Returns:
        A :class:`Complexity`; the FLOPs of counters not run are None.
    """
    cfg, name = _load(config)
    unknown = [c for c in counters if c not in COUNTERS]
    if unknown or not counters:
        raise ValueError(f'unknown FLOP counters {unknown or list(counters)}; '
                         f'choose from {list(COUNTERS)}')
    if shape is None:
        hw = default_input_shape(cfg)
    elif len(shape) in (1, 2) and all(int(s) > 0 for s in shape):
        hw = (int(shape[0]), int(shape[-1]))
    else:
        raise ValueError(f'shape must be (H, W) or (S,) with positive sizes, got {tuple(shape)}')
    with torch.random.fork_rng():  # seeded weights: a detector's proposals are reproducible
        torch.manual_seed(0)
        model = build_model(cfg)
    image = torch.randn(1, 3, *hw, generator=torch.Generator().manual_seed(0))
    data_samples = _data_samples(cfg.default_scope, image)
    flops: Dict[str, int] = {}
    with torch.no_grad():
        for counter in counters:
            flops[counter] = _COUNTER_FNS[counter](model, image, data_samples)
    params = _count(model)
    return Complexity(config=name, scope=cfg.default_scope, model_type=type(model).__name__,
                      input_shape=hw, params=params, hook_flops=flops.get('hook'),
                      jit_flops=flops.get('jit'),
                      inference_params=params - _count(getattr(model, 'auxiliary_head', None)))


def _count(module: Optional[nn.Module]) -> int:
    return sum(p.numel() for p in module.parameters()) if module is not None else 0
