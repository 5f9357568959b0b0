"""What the tools' options do to a loaded config, for mmdet and mmseg configs alike.

The framework is the config's ``default_scope``; :func:`framework_of` is the one place that
checks it.
"""
import os.path as osp
from typing import Dict, Optional, Union

import torch
from mmengine.config import Config, ConfigDict

# default_scope -> what the framework is called in messages
FRAMEWORKS: Dict[str, str] = {'mmdet': 'MMDetection', 'mmseg': 'MMSegmentation'}
LAUNCHERS = ('none', 'pytorch', 'slurm', 'mpi')


class ConfigError(ValueError):
    """A config or option that cannot work; the message says which and how to fix it."""


def framework_of(cfg: Union[Config, dict]) -> str:
    """The config's ``default_scope`` (``'mmdet'`` or ``'mmseg'``); a clear error otherwise."""
    scope = cfg.get('default_scope')
    if scope not in FRAMEWORKS:
        name = getattr(cfg, 'filename', None) or 'the config'
        raise ConfigError(f'{name}: default_scope is {scope!r}; emo-mm serves '
                         f'{sorted(FRAMEWORKS)} configs (set default_scope, or inherit an mmdet:: '
                         f'or mmseg:: base config)')
    return scope


def load_config(path: str, cfg_options: Optional[dict] = None, launcher: str = 'none',
                work_dir: Optional[str] = None) -> Config:
    """Reads a config, applies ``--cfg-options``, the launcher and the work dir.

    The work dir is, by priority, ``work_dir``, the config's own, ``work_dirs/<config name>``.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'config file not found: {path}')
    if launcher not in LAUNCHERS:
        raise ConfigError(f'launcher must be one of {LAUNCHERS}, got {launcher!r}')
    cfg = Config.fromfile(path)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    cfg.launcher = launcher
    framework_of(cfg)
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(path))[0])
    return cfg


def apply_train_options(cfg: Config, amp: bool = False, auto_scale_lr: bool = False,
                        resume: Optional[str] = None) -> None:
    """``--amp``, ``--auto-scale-lr`` and ``--resume [CKPT]`` (``'auto'``: the work dir's latest).

    Exact resume is the config's business: our family bases declare
    :class:`emo_mm.engine.RNGStateHook` in ``custom_hooks``, so any launcher resumes exactly.
    """
    if amp:
        if not torch.cuda.is_available():
            # mmengine 0.10's AmpOptimWrapper asserts a GPU (CUDA, NPU, MLU, MUSA) and scales
            # the loss with CUDA's GradScaler; it has no CPU (bfloat16) path.
            raise ConfigError('--amp needs a CUDA GPU: mmengine\'s AmpOptimWrapper refuses to '
                              'run on CPU, and none is available here')
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.loss_scale = 'dynamic'
    if auto_scale_lr:
        if 'base_batch_size' not in cfg.get('auto_scale_lr', {}):
            raise ConfigError(f'--auto-scale-lr needs `auto_scale_lr = dict(base_batch_size=...)` '
                             f'in {cfg.filename}')
        cfg.auto_scale_lr.enable = True
    if resume == 'auto':
        cfg.resume, cfg.load_from = True, None
    elif resume is not None:
        cfg.resume, cfg.load_from = True, resume


def enable_visualization(cfg: Config, show: bool = False, show_dir: Optional[str] = None,
                         wait_time: float = 2.) -> None:
    """``--show`` / ``--show-dir``: turns the framework's visualisation hook on while testing.

    ``show_dir`` is where the pictures go, as each framework's own ``tools/test.py`` takes it
    (mmdet: under ``work_dir/<timestamp>/``; mmseg: the visualiser's save dir).
    """
    hook = cfg.default_hooks.get('visualization')
    if hook is None:
        raise ConfigError(f'{cfg.filename} has no default_hooks.visualization to draw with')
    hook.draw = True
    if show:
        hook.show, hook.wait_time = True, wait_time
    if show_dir:
        if framework_of(cfg) == 'mmdet':
            hook.test_out_dir = show_dir
        else:
            cfg.visualizer.save_dir = show_dir


def enable_tta(cfg: Config) -> None:
    """``--tta``: wraps the model in the config's ``tta_model`` and tests with ``tta_pipeline``."""
    missing = [key for key in ('tta_model', 'tta_pipeline') if key not in cfg]
    if missing:
        raise ConfigError(f'--tta needs {missing} in {cfg.filename}')
    cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
    cfg.model = ConfigDict(**cfg.tta_model, module=cfg.model)


def add_result_dump(cfg: Config, out: str) -> None:
    """``--out``, as each framework's own ``tools/test.py`` takes it: mmdet dumps the
    predictions to the ``.pkl`` file ``out``; mmseg writes the label maps into the folder ``out``.
    """
    if framework_of(cfg) == 'mmseg':
        cfg.test_evaluator.output_dir = out
        cfg.test_evaluator.keep_results = True
        return
    if not out.endswith(('.pkl', '.pickle')):
        raise ConfigError(f'--out for detection must be a .pkl or .pickle file, got {out!r}')
    evaluators = cfg.test_evaluator if isinstance(cfg.test_evaluator, list) else [
        cfg.test_evaluator]
    cfg.test_evaluator = [*evaluators, dict(type='DumpDetResults', out_file_path=out)]
