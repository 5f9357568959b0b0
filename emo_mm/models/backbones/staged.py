"""What EMO and EMOv2 share: five stages of blocks (``stage0`` the stem, stride 2, to
``stage4``, stride 32), built up to the last one returned, with the same output, freezing,
deploy and checkpoint behaviour."""
from numbers import Integral
from typing import List, Optional, Sequence, Tuple, Union

import torch
from mmengine.model import BaseModule
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from .arguments import (MEMORY_FORMATS, check_frozen_stages, parse_out_indices,
                        resolve_memory_format)
from .pretrained import init_from_pretrained_cfg, load_pretrained

NUM_STAGES = 5  # stage0 (stem, stride 2) .. stage4 (stride 32)
# Keys of the authors' ImageNet classifier that a dense-prediction backbone does not have.
CLASSIFIER_PREFIXES = ('norm.', 'head.')


class StagedBackbone(BaseModule):
    """Base of the five-stage backbones; a subclass builds ``stage0 ..
    stage{num_built_stages - 1}`` (``nn.ModuleList`` each) in its ``__init__`` between
    :meth:`_set_outputs` and :meth:`_finish_build`.

    Input ``(N, 3, H, W)``; output: a tuple with the maps of the stages in ``out_indices``, in
    the input's memory format.
    """

    def _set_outputs(self, out_indices: Sequence[int], frozen_stages: int, norm_eval: bool,
                     memory_format: Optional[str]) -> None:
        """Checks and keeps the output, freezing and layout arguments (see the subclasses)."""
        name = type(self).__name__
        self.out_indices = parse_out_indices(out_indices, NUM_STAGES,
                                             '0 = stem, stride 2; 4 = last stage, stride 32')
        self.num_built_stages = max(self.out_indices) + 1
        self.frozen_stages = check_frozen_stages(
            frozen_stages, self.num_built_stages - 1,
            f'stages 0..k stay frozen; -1: none; out_indices={self.out_indices} builds stages '
            f'0..{self.num_built_stages - 1} only')
        self.norm_eval = norm_eval
        self.memory_format = resolve_memory_format(memory_format, name)
        self.deployed = False  # set by switch_to_deploy()

    def _finish_build(self) -> None:
        # The convolution weights have the activations' layout: their gradients then come out
        # in the layout DDP's gradient buckets expect (no "grad strides do not match bucket
        # view strides" copies), and no convolution converts its weight per call.
        self.to(memory_format=MEMORY_FORMATS[self.memory_format])
        self._freeze_stages()

    @staticmethod
    def _parse_window_size(window_size: Union[int, Sequence[int]]) -> Tuple[int, ...]:
        """One window side per stage 1-4."""
        if isinstance(window_size, Integral):
            sizes = (window_size, ) * (NUM_STAGES - 1)
        else:
            sizes = tuple(window_size) if isinstance(window_size, Sequence) else ()
        if len(sizes) != NUM_STAGES - 1 or not all(
                isinstance(s, Integral) and not isinstance(s, bool) and s >= 0 for s in sizes):
            raise ValueError('window_size must be a non-negative int (0 = one window over '
                             'the whole map) or 4 of them, one per stage 1-4; '
                             f'got {window_size!r}')
        return sizes

    # ----------------------------------------------------------------------- forward
    @property
    def stages(self) -> List[nn.ModuleList]:
        """The built stages, ``stage0 .. stage{max(out_indices)}``."""
        return [getattr(self, f'stage{i}') for i in range(self.num_built_stages)]

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f'{type(self).__name__} expects images of shape (N, 3, H, W), got '
                             f'{tuple(x.shape)}')
        # Inside, the maps have the weights' layout (memory_format); the outputs keep the
        # memory format of the input.
        channels_last_input = x.is_contiguous(memory_format=torch.channels_last) and \
            not x.is_contiguous()
        out_format = torch.channels_last if channels_last_input else torch.contiguous_format
        x = x.contiguous(memory_format=MEMORY_FORMATS[self.memory_format])
        outs = []
        for i, stage in enumerate(self.stages):
            for block in stage:
                x = block(x)
            if i in self.out_indices:
                outs.append(x.contiguous(memory_format=out_format))
        return tuple(outs)

    # ---------------------------------------------------------------- train behaviour
    def _freeze_stages(self) -> None:
        for stage in self.stages[:self.frozen_stages + 1]:
            stage.eval()
            for param in stage.parameters():
                param.requires_grad = False

    def switch_to_deploy(self) -> 'StagedBackbone':
        """Converts to the inference form, in place; returns ``self``.

        Every module with a ``switch_to_deploy`` folds what it can (BatchNorm into the
        convolution next to it, with its running statistics; EMOv2's layer scales into its
        projection) and the activations run in place. Outputs equal the eval-mode outputs of
        the default form up to float rounding. The result is inference-only (``train(True)``
        raises) and its state_dict differs: load checkpoints before switching.
        """
        self.eval()
        for module in self.modules():
            if module is not self and hasattr(module, 'switch_to_deploy'):
                module.switch_to_deploy()
        self.deployed = True
        return self

    def train(self, mode: bool = True) -> 'StagedBackbone':
        if mode and self.deployed:
            raise RuntimeError(f'this {type(self).__name__} was switched to the deploy '
                               '(BatchNorm-folded, inference-only) form and cannot be trained; '
                               'build a new one')
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for module in self.modules():
                if isinstance(module, _BatchNorm):
                    module.eval()
        return self

    # ------------------------------------------------------------------ checkpoints
    @property
    def unbuilt_prefixes(self) -> Tuple[str, ...]:
        """Checkpoint key prefixes of the stages after ``max(out_indices)``, not built."""
        return tuple(f'stage{i}.' for i in range(self.num_built_stages, NUM_STAGES))

    def init_weights(self) -> None:
        if not init_from_pretrained_cfg(self, skip_prefixes=CLASSIFIER_PREFIXES,
                                        unbuilt_prefixes=self.unbuilt_prefixes):
            super().init_weights()

    def load_pretrained(self, checkpoint: str, prefix: Optional[str] = None,
                        state_key: Optional[str] = None) -> None:
        """Loads a checkpoint path or URL: the authors' flat state dict, their trainers'
        wrappers (``net``, ``net_E``, ``state_dict``, ``model``; ``state_key`` picks one), or
        mmengine's.

        The classifier's keys (``norm.*``, ``head.*``) and those of the stages not built are
        skipped and logged; any other key that does not fit, or a missing one, is an error that
        names the keys, shapes and the file read
        (see :func:`~emo_mm.models.backbones.pretrained.load_pretrained`).
        """
        load_pretrained(self, checkpoint, prefix=prefix, state_key=state_key,
                        skip_prefixes=CLASSIFIER_PREFIXES,
                        unbuilt_prefixes=self.unbuilt_prefixes)
