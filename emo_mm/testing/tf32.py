"""TF32 off for float32 comparisons on CUDA.

On Ampere and newer GPUs cuDNN convolutions run in TF32 by default
(``torch.backends.cudnn.allow_tf32 = True``): 10-bit mantissas, relative errors near 1e-3,
far above the 1e-5 float32 tolerances the parity checks derive from float32 rounding. The
checks turn it off (for matmuls too) while they run; on CPU the flags have no effect.
"""
import contextlib
from typing import Iterator

import torch


def tf32_state() -> str:
    """``'matmul TF32 on/off, cuDNN TF32 on/off'``."""
    flags = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    return 'matmul TF32 {}, cuDNN TF32 {}'.format(*('on' if f else 'off' for f in flags))


@contextlib.contextmanager
def tf32_disabled() -> Iterator[None]:
    """Full float32 matmuls and convolutions inside; the previous flags restored after."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved
