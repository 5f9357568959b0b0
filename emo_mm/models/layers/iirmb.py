"""The improved inverted Residual Mobile Block (i²RMB) of EMOv2 and its hybrid window attention.

Attribute names follow the authors' release (``eops.0.net.conv``, ``eops.0.qk.conv``,
``conv_local.norm``, ``ls.gamma`` ...) so that their ImageNet checkpoints load without renaming.
The small modules (:class:`ConvNormAct`, :class:`LayerNorm2d`, :class:`Activation`) are EMO's.
In the default form every convolution and norm runs as a module on the shapes the authors ran
it on, so FLOP counters see what they saw; ``switch_to_deploy`` (inference only) folds the
BatchNorms and the layer scale into the convolutions.

The backbone runs channels-last: the permutes and reshapes below are views of such maps, and
stay correct (only slower) for any other memory format.
"""
from typing import Tuple

import torch
import torch.nn.functional as F
from mmcv.cnn import build_norm_layer
from mmcv.cnn.bricks import DropPath
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from .irmb import ConvNormAct, LayerNorm2d, fold_norm_before


class LayerScale2d(nn.Module):
    """``x * gamma`` with one learned factor per channel; ``(N, C, H, W) -> (N, C, H, W)``."""

    def __init__(self, channels: int, init_value: float = 1e-6) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.full((1, channels, 1, 1), init_value))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # In place only without autograd: gamma's gradient needs the unscaled x.
        return x * self.gamma if torch.is_grad_enabled() else x.mul_(self.gamma)


class ConvOperator(nn.Module):
    """EMOv2's operator 0: a 1x1 convolution with bias and an activation (key ``net.conv``);
    ``(N, C_in, H, W) -> (N, C_mid, H, W)``."""

    def __init__(self, in_channels: int, hidden: int, act: str) -> None:
        super().__init__()
        self.net = ConvNormAct(in_channels, hidden, bias=True, act=act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def close_windows(x: torch.Tensor, n1: int, n2: int) -> torch.Tensor:
    """``(N, Hp, Wp, C)`` -> ``(N * n1 * n2, wh * ww, C)``: window ``(a, b)`` is the contiguous
    tile of rows ``a * wh + r`` and columns ``b * ww + c``."""
    n, hp, wp, c = x.shape
    x = x.reshape(n, n1, hp // n1, n2, wp // n2, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(n * n1 * n2, (hp // n1) * (wp // n2), c)


def remote_windows(x: torch.Tensor, n1: int, n2: int) -> torch.Tensor:
    """``(N, Hp, Wp, C)`` -> ``(N * n1 * n2, wh * ww, C)``: window ``(a, b)`` is the strided
    grid of rows ``r * n1 + a`` and columns ``c * n2 + b``, spread over the whole map."""
    n, hp, wp, c = x.shape
    x = x.reshape(n, hp // n1, n1, wp // n2, n2, c).permute(0, 2, 4, 1, 3, 5)
    return x.reshape(n * n1 * n2, (hp // n1) * (wp // n2), c)


def close_merge(x: torch.Tensor, n: int, n1: int, n2: int,
                window: Tuple[int, int]) -> torch.Tensor:
    """Inverse of :func:`close_windows`: ``(N * n1 * n2, wh * ww, C) -> (N, Hp, Wp, C)``."""
    wh, ww = window
    x = x.reshape(n, n1, n2, wh, ww, -1).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(n, n1 * wh, n2 * ww, x.shape[-1])


def remote_merge(x: torch.Tensor, n: int, n1: int, n2: int,
                 window: Tuple[int, int]) -> torch.Tensor:
    """Inverse of :func:`remote_windows`: ``(N * n1 * n2, wh * ww, C) -> (N, Hp, Wp, C)``."""
    wh, ww = window
    x = x.reshape(n, n1, n2, wh, ww, -1).permute(0, 3, 1, 4, 2, 5)
    return x.reshape(n, wh * n1, ww * n2, x.shape[-1])


class HybridWindowAttention(nn.Module):
    """EMOv2's hybrid attention (operator 3): ``(N, C, H, W) -> (N, C_mid, H, W)``.

    ``qk`` (1x1, C -> 2C) and ``v`` (1x1, C -> C_mid, then the activation) run once on the map
    zero-padded at the bottom/right to window multiples; attention runs in two partitions of
    that map into ``n1 x n2`` windows, strided ("remote") and contiguous ("close"), sharing q, k
    and v; their results are summed and cropped. Padded pixels are attended to, not masked
    (their keys and values are the biases), as in the authors' model. With a single window both
    partitions are the identity and the output is twice the plain attention.

    Args:
        in_channels: ``C``, split into ``C // dim_head`` heads for q and k.
        hidden: ``C_mid``, split into as many heads for v.
        dim_head: q/k width per head.
        window_size: window side; ``0`` means one window over the whole map.
        act: activation of ``v``.
    """

    def __init__(self, in_channels: int, hidden: int, dim_head: int, window_size: int,
                 act: str = 'gelu') -> None:
        super().__init__()
        if in_channels % dim_head:
            raise ValueError(f'attention width {in_channels} is not divisible by '
                             f'dim_head {dim_head}')
        self.num_heads = in_channels // dim_head
        if hidden % self.num_heads:
            raise ValueError(f'value width {hidden} is not divisible by the {self.num_heads} '
                             f'heads of width {in_channels} / dim_head {dim_head}')
        self.window_size = window_size
        self.scale = dim_head**-0.5
        self.qk = ConvNormAct(in_channels, 2 * in_channels, bias=True)
        self.v = ConvNormAct(in_channels, hidden, bias=True, act=act)

    def attend(self, qk: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Window tokens ``(B, L, 2C)``, ``(B, L, C_mid)`` -> ``(B, L, C_mid)``."""
        b, length, heads = qk.shape[0], qk.shape[1], self.num_heads
        q, k = qk.reshape(b, length, 2 * heads, -1).transpose(1, 2).chunk(2, dim=1)
        v = v.reshape(b, length, heads, -1).transpose(1, 2)
        if q.is_cuda:
            out = F.scaled_dot_product_attention(q, k, v, scale=self.scale)
        else:
            # v's head width differs from q/k's, so CPU SDPA takes its generic path, measured
            # about 2x slower than these two matmuls (batch 1 and 32, the 1M-5M window shapes).
            out = torch.softmax((q * self.scale) @ k.transpose(-2, -1), dim=-1) @ v
        return out.transpose(1, 2).reshape(b, length, -1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, height, width = x.shape
        window = (self.window_size, self.window_size) if self.window_size > 0 else (height, width)
        pad_h, pad_w = -height % window[0], -width % window[1]
        # A trace (ONNX export, the jit FLOP counter) takes the general path whatever its
        # example's size: a Python branch would freeze that size's choice into the graph.
        tracing = torch.jit.is_tracing()
        padded = tracing or bool(pad_h or pad_w)
        if padded:
            x = F.pad(x, (0, pad_w, 0, pad_h))
        n1, n2 = x.shape[2] // window[0], x.shape[3] // window[1]
        # Channels-last maps: these permutes are views, (N, Hp, Wp, C).
        qk = self.qk(x).permute(0, 2, 3, 1)
        v = self.v(x).permute(0, 2, 3, 1)
        if not tracing and n1 == n2 == 1:
            # Both partitions are the whole map: remote + close = 2 x one attention (exact).
            out = self.attend(qk.reshape(n, -1, qk.shape[-1]), v.reshape(n, -1, v.shape[-1]))
            out = out.reshape(n, x.shape[2], x.shape[3], -1)
            out = out + out if torch.is_grad_enabled() else out.mul_(2)
        else:
            out = remote_merge(self.attend(remote_windows(qk, n1, n2), remote_windows(v, n1, n2)),
                               n, n1, n2, window)
            close = close_merge(self.attend(close_windows(qk, n1, n2), close_windows(v, n1, n2)),
                                n, n1, n2, window)
            # Out of place under autograd: the merge may be a view of the attention output,
            # which its backward reads.
            out = out + close if torch.is_grad_enabled() else out.add_(close)
        out = out.permute(0, 3, 1, 2)
        return out[:, :, :height, :width] if padded else out


class iiRMB(nn.Module):
    """Improved inverted Residual Mobile Block (i²RMB) of EMOv2:
    ``(N, C_in, H, W) -> (N, C_out, ceil(H / stride), ceil(W / stride))``.

    ``norm`` -> ``eops.0`` (1x1 expansion + activation, or hybrid window attention) ->
    depth-wise ``conv_local`` (BN + SiLU; + inner skip) -> ``proj`` (1x1) -> ``ls`` (layer
    scale, also on blocks without skip) -> outer skip with drop path. Skips exist only when
    ``skip`` and ``stride == 1`` and ``C_in == C_out``.

    Args:
        in_channels / out_channels: ``C_in`` / ``C_out``.
        expansion: hidden width is ``int(C_in * expansion)``.
        norm: ``'bn'`` (BatchNorm from ``norm_cfg``) or ``'ln'`` (channel LayerNorm), on C_in.
        act: activation of the expansion (or of ``v``): ``'silu'`` or ``'gelu'``.
        dw_kernel_size / stride: of the depth-wise convolution.
        attention: hybrid window attention with ``C_in // dim_head`` heads instead of the 1x1
            expansion.
        window_size: side of the attention windows; ``0`` means one window over the whole map.
        skip: allow the residual connections.
        drop_path_rate: stochastic depth on the outer residual branch.
        layer_scale: initial value of ``ls.gamma``.
        norm_cfg: BatchNorm config (``BN``/``SyncBN``), also used inside ``conv_local``.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 expansion: float,
                 norm: str,
                 act: str,
                 dw_kernel_size: int = 5,
                 stride: int = 1,
                 attention: bool = False,
                 dim_head: int = 32,
                 window_size: int = 10,
                 skip: bool = True,
                 drop_path_rate: float = 0.,
                 layer_scale: float = 1e-6,
                 norm_cfg: dict = dict(type='BN', eps=1e-6)) -> None:
        super().__init__()
        hidden = int(in_channels * expansion)
        self.has_skip = skip and stride == 1 and in_channels == out_channels
        if norm == 'bn':
            self.norm = build_norm_layer(norm_cfg, in_channels)[1]
        elif norm == 'ln':
            self.norm = LayerNorm2d(in_channels)
        else:
            raise ValueError(f'unknown block norm {norm!r}; valid: bn, ln')
        operator = HybridWindowAttention(in_channels, hidden, dim_head, window_size, act) \
            if attention else ConvOperator(in_channels, hidden, act)
        self.eops = nn.ModuleList([operator])
        self.conv_local = ConvNormAct(hidden, hidden, dw_kernel_size, stride, groups=hidden,
                                      norm_cfg=norm_cfg, act='silu')
        self.proj = ConvNormAct(hidden, out_channels)
        self.ls = LayerScale2d(out_channels, layer_scale)
        self.drop_path = DropPath(drop_path_rate) if drop_path_rate > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = self.eops[0](self.norm(x))
        local = self.conv_local(x)
        # The adds run in place: autograd saves neither an activation's nor a conv's output.
        x = local.add_(x) if self.has_skip else local
        x = self.ls(self.proj(x))
        return self.drop_path(x).add_(shortcut) if self.has_skip else x

    def switch_to_deploy(self) -> None:
        """Folds the layer scale into ``proj`` and a BatchNorm input norm into the 1x1 expansion
        that follows it directly (the BatchNorms of ``conv_local`` fold through its own
        ``switch_to_deploy``, which :meth:`EMOv2.switch_to_deploy` also calls)."""
        if isinstance(self.ls, LayerScale2d):
            with torch.no_grad():
                self.proj.conv.weight.mul_(self.ls.gamma.reshape(-1, 1, 1, 1))
            self.ls = nn.Identity()
        operator = self.eops[0]
        if isinstance(self.norm, _BatchNorm) and isinstance(operator, ConvOperator):
            fold_norm_before(self.norm, operator.net.conv)
            self.norm = nn.Identity()


def emov2_stem(out_channels: int, norm_cfg: dict) -> nn.ModuleList:
    """EMOv2's stem, keys ``0..2``: ``(N, 3, H, W) -> (N, C, ceil(H / 2), ceil(W / 2))``.

    3x3 stride-2 convolution with bias + BN + SiLU, depth-wise 3x3 + BN + SiLU, plain 1x1
    convolution; no residual.
    """
    return nn.ModuleList([
        ConvNormAct(3, out_channels, 3, 2, bias=True, norm_cfg=norm_cfg, act='silu'),
        ConvNormAct(out_channels, out_channels, 3, 1, groups=out_channels, norm_cfg=norm_cfg,
                    act='silu'),
        ConvNormAct(out_channels, out_channels, 1),
    ])
