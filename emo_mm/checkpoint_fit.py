"""The one check that a checkpoint's weights fit a model, for every place that loads a whole
model's checkpoint: ``tools/test.py``'s preflight (:func:`emo_mm.engine.runner.preflight`) and
the ONNX export (:func:`emo_mm.deploy.export.build_deploy_model`). The pretrained backbone
loader checks its weights with the same comparison (``pretrained.mismatches``)."""
from collections import OrderedDict
from typing import Any, Tuple

import torch
from torch import nn

from .models.backbones.pretrained import (CheckpointError, local_checkpoint, mismatches,
                                          pick_state_dict, read_checkpoint)


def fitting_state_dict(model: nn.Module, checkpoint: str, config_name: str
                       ) -> Tuple['OrderedDict[str, torch.Tensor]', Any]:
    """``(state_dict, loaded checkpoint)`` of ``checkpoint`` (a path or URL, read with
    ``weights_only`` safety), checked to load strictly into ``model``; a
    :class:`CheckpointError` names every missing, unexpected or misshapen key otherwise."""
    loaded = read_checkpoint(local_checkpoint(checkpoint))
    state = pick_state_dict(loaded, checkpoint)
    problems = mismatches(model.state_dict(), state)
    if problems:
        raise CheckpointError(f'checkpoint {checkpoint} does not fit the model of '
                              f'{config_name}: {problems}. Was it trained with another config?')
    return state, loaded
