"""Residual adds that save memory in place without changing the stream's dtype under autocast.

The authors add out of place, ``shortcut + branch``: under autocast a half-precision branch
(a convolution or Linear output) added to a float32 shortcut (a LayerNorm output) gives a
float32 sum. Written in place into the branch, the same sum would be rounded to half
precision; so the add runs in place only where the branch already has the sum's dtype.
"""
import torch


def add_residual(branch: torch.Tensor, shortcut: torch.Tensor) -> torch.Tensor:
    """``shortcut + branch`` in the promoted dtype; written over ``branch`` when that is its
    dtype (``branch`` must be a fresh tensor whose value no backward needs)."""
    if branch.dtype == torch.promote_types(branch.dtype, shortcut.dtype):
        return branch.add_(shortcut)
    return shortcut + branch


def addcmul_residual(shortcut: torch.Tensor, branch: torch.Tensor,
                     scale: torch.Tensor) -> torch.Tensor:
    """``shortcut + branch * scale`` in the promoted dtype; written over ``branch`` when no
    gradient is recorded and ``branch`` has that dtype (addcmul's backward reads ``branch``)."""
    dtype = torch.promote_types(shortcut.dtype, torch.promote_types(branch.dtype, scale.dtype))
    if torch.is_grad_enabled() or torch.jit.is_tracing() or branch.dtype != dtype:
        return torch.addcmul(shortcut, branch, scale)
    return torch.addcmul(shortcut, branch, scale, out=branch)
