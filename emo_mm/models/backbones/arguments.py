"""Argument checks the backbones share, with messages that name the valid choices."""
from numbers import Integral
from typing import Any, Dict, Optional, Sequence, Tuple, Union

import torch


def select_arch(arch: Union[str, Dict[str, Any]], arch_zoo: Dict[str, Dict[str, Any]],
                required_fields: Sequence[str], model: str) -> Dict[str, Any]:
    """``arch_zoo[arch]`` for a name (any case), or a dict that has every required field."""
    if isinstance(arch, str):
        if arch.lower() not in arch_zoo:
            raise ValueError(f'unknown {model} arch {arch!r}; valid archs: {sorted(arch_zoo)} '
                             f'or a dict with fields {tuple(required_fields)}')
        return arch_zoo[arch.lower()]
    if not isinstance(arch, dict):
        raise TypeError(f'arch must be a name in {sorted(arch_zoo)} or a dict, '
                        f'got {type(arch).__name__}')
    missing = [field for field in required_fields if field not in arch]
    if missing:
        raise ValueError(f'{model} arch dict is missing fields {missing}; it needs '
                         f'{tuple(required_fields)} (and optionally drop_path_rate)')
    return arch


def parse_out_indices(out_indices: Union[int, Sequence[int]], num_stages: int,
                      meaning: str) -> Tuple[int, ...]:
    """Distinct stage indices in ``0..num_stages - 1``, sorted; ``meaning`` says what they are."""
    if isinstance(out_indices, Integral):
        out_indices = (out_indices, )
    indices = tuple(out_indices)
    if not indices or not all(isinstance(i, Integral) and 0 <= i < num_stages for i in indices) \
            or len(set(indices)) != len(indices):
        raise ValueError(f'out_indices must be distinct stage indices in 0..{num_stages - 1} '
                         f'({meaning}); got {out_indices!r}')
    return tuple(sorted(indices))


def check_frozen_stages(frozen_stages: int, highest: int, meaning: str) -> int:
    """An int in ``-1..highest`` (``-1``: nothing frozen)."""
    if not (isinstance(frozen_stages, Integral) and not isinstance(frozen_stages, bool)
            and -1 <= frozen_stages <= highest):
        raise ValueError(f'frozen_stages must be an int in -1..{highest} ({meaning}), got '
                         f'{frozen_stages!r}')
    return frozen_stages


MEMORY_FORMATS = {'channels_last': torch.channels_last, 'contiguous': torch.contiguous_format}


def resolve_memory_format(memory_format: Optional[str], model: str) -> str:
    """``'channels_last'`` or ``'contiguous'``; ``None`` picks by where the backbone will run:
    channels-last without a visible GPU (measured faster on CPU: docs/benchmark.md), contiguous
    with one (cuDNN's depth-wise NHWC kernels may be slower; not measured yet, docs/gpu.md)."""
    if memory_format is None:
        return 'contiguous' if torch.cuda.is_available() else 'channels_last'
    if memory_format not in MEMORY_FORMATS:
        raise ValueError(f'{model} memory_format must be one of {sorted(MEMORY_FORMATS)} or None '
                         f'(auto: channels_last on CPU, contiguous on CUDA), got '
                         f'{memory_format!r}')
    return memory_format
