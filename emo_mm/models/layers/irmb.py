"""The inverted Residual Mobile Block (iRMB) of EMO and the small modules it is made of.

Attribute names follow the authors' release (``convs.0.0``, ``conv_local.norm``, ``qk.conv``,
``se.conv_reduce`` ...) so that their ImageNet checkpoints load without renaming. In the default
form every convolution and norm runs as a module on the shapes the authors ran it on, so
module-hook FLOP counters see exactly what they saw. ``switch_to_deploy`` (inference only) folds
the BatchNorms into the convolutions and runs activations in place.

The backbone runs channels-last: the permutes and reshapes below are views of such maps, and
stay correct (only slower) for any other memory format.
"""
import importlib
import math
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from mmcv.cnn import build_norm_layer
from mmcv.cnn.bricks import DropPath
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from .residual import add_residual


def is_compiling() -> bool:
    """Whether torch.compile (Dynamo) is tracing the caller (``torch.compiler.is_compiling``
    from torch 2.3, ``torch._dynamo.is_compiling`` before)."""
    compiler = getattr(torch, 'compiler', None)
    if compiler is not None and hasattr(compiler, 'is_compiling'):
        return compiler.is_compiling()
    return importlib.import_module('torch._dynamo').is_compiling()


class Activation(nn.Module):
    """SiLU or exact (erf) GELU, elementwise, any shape.

    It overwrites its input when ``inplace`` is set (the deploy form) or when no gradient is
    recorded: on CPU the fresh output buffer of a large map costs more (page faults) than the
    arithmetic, and every input it gets is a fresh conv/norm output no one else reads. Under
    autograd an in-place activation would save a copy of its input, so training keeps it off.
    """

    def __init__(self, kind: str) -> None:
        super().__init__()
        if kind not in ('silu', 'gelu'):
            raise ValueError(f'unknown activation {kind!r}; valid: silu, gelu')
        self.kind = kind
        self.inplace = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        inplace = self.inplace or not torch.is_grad_enabled()
        if self.kind == 'silu':
            return F.silu(x, inplace=inplace)
        return torch.ops.aten.gelu_(x) if inplace else F.gelu(x)

    def extra_repr(self) -> str:
        return f'{self.kind}, inplace={self.inplace}'


@torch.no_grad()
def fold_norm_after(conv: nn.Conv2d, norm: _BatchNorm) -> None:
    """Folds an eval-mode ``norm(conv(x))`` into ``conv`` (weight and a bias, created if absent)."""
    scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
    bias = conv.bias if conv.bias is not None else torch.zeros_like(norm.running_mean)
    conv.weight.mul_(scale.reshape(-1, 1, 1, 1))
    conv.bias = nn.Parameter((bias - norm.running_mean) * scale + norm.bias)


@torch.no_grad()
def fold_norm_before(norm: _BatchNorm, conv: nn.Conv2d) -> None:
    """Folds an eval-mode ``conv(norm(x))`` into ``conv``; only for ungrouped 1x1 convolutions,
    where no zero padding would see the norm's shift."""
    if conv.kernel_size != (1, 1) or conv.groups != 1:
        raise ValueError('a norm folds into a following convolution only if it is 1x1, ungrouped')
    scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
    shift = norm.bias - norm.running_mean * scale
    bias = conv.bias if conv.bias is not None else conv.weight.new_zeros(conv.out_channels)
    conv.bias = nn.Parameter(bias + conv.weight.flatten(1) @ shift)
    conv.weight.mul_(scale.reshape(1, -1, 1, 1))


class LayerNorm2d(nn.Module):
    """LayerNorm over the channels of an ``(N, C, H, W)`` map, at every pixel.

    The ``nn.LayerNorm`` lives at ``.norm`` (checkpoint key ``norm.norm.weight``). On a
    channels-last map the permutes are views: no copy before or after the normalisation.
    """

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(channels, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        # The output of a contiguous NCHW input is made contiguous too (one copy): the stream
        # keeps its memory format.
        return out if x.is_contiguous(memory_format=torch.channels_last) else out.contiguous()


class ConvNormAct(nn.Module):
    """``conv`` -> optional ``norm`` -> optional ``act``; padding ``ceil((k - stride) / 2)``."""

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 kernel_size: int = 1,
                 stride: int = 1,
                 groups: int = 1,
                 bias: bool = False,
                 norm_cfg: Optional[dict] = None,
                 act: Optional[str] = None) -> None:
        super().__init__()
        padding = math.ceil((kernel_size - stride) / 2)
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding,
                              groups=groups, bias=bias)
        self.norm = build_norm_layer(norm_cfg, out_channels)[1] if norm_cfg else nn.Identity()
        self.act = Activation(act) if act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.norm(self.conv(x)))

    def switch_to_deploy(self) -> None:
        """Folds the BatchNorm into ``conv`` and makes the activation in-place."""
        if isinstance(self.norm, _BatchNorm):
            fold_norm_after(self.conv, self.norm)
            self.norm = nn.Identity()
        if isinstance(self.act, Activation):
            self.act.inplace = True


class SqueezeExcite(nn.Module):
    """Channel gating: ``x * sigmoid(expand(act(reduce(mean_hw(x)))))``."""

    def __init__(self, channels: int, reduced_channels: int, act: str) -> None:
        super().__init__()
        self.conv_reduce = nn.Conv2d(channels, reduced_channels, 1, bias=True)
        self.act1 = Activation(act)
        self.conv_expand = nn.Conv2d(reduced_channels, channels, 1, bias=True)
        self.inplace = False  # set by switch_to_deploy: autograd needs ``x`` for the gate's grad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, C, H, W) -> (N, C, H, W)``."""
        gate = self.conv_expand(self.act1(self.conv_reduce(x.mean((2, 3), keepdim=True))))
        return x.mul_(gate.sigmoid()) if self.inplace else x * gate.sigmoid()

    def switch_to_deploy(self) -> None:
        """Gates in place (inference only)."""
        self.inplace = True


class Stem(nn.Module):
    """3x3 stride-2 convolution with bias, then BatchNorm; ``(N, 3, H, W) -> (N, C, H/2, W/2)``.

    The single-element ``convs`` list mirrors the authors' multi-dilation patch embedding, whose
    key names (``convs.0.0``, ``convs.0.1``) their checkpoints carry.
    """

    def __init__(self, in_channels: int, out_channels: int, norm_cfg: dict) -> None:
        super().__init__()
        self.convs = nn.ModuleList([
            nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 3, stride=2, padding=1, bias=True),
                build_norm_layer(norm_cfg, out_channels)[1])
        ])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.convs[0](x)

    def switch_to_deploy(self) -> None:
        """Folds the BatchNorm into the convolution (``convs.0.1`` becomes an identity)."""
        conv, norm = self.convs[0]
        if isinstance(norm, _BatchNorm):
            fold_norm_after(conv, norm)
            self.convs[0][1] = nn.Identity()


def window_partition(x: torch.Tensor, window: Tuple[int, int]) -> torch.Tensor:
    """Reorders the pixels of ``(N, C, wh * n1, ww * n2)`` maps into strided-window order.

    Window ``(a, b)`` holds the pixels at rows ``r * n1 + a`` and columns ``c * n2 + b``: a grid
    sampled across the whole map, not a contiguous tile. Returns a map of the same shape whose
    pixels, read row-major, run over windows ``(a, b)`` and then over ``(r, c)`` inside a window;
    stored channels-last, so ``(N * n1 * n2, wh * ww, C)`` tokens are a view of it. A pure pixel
    permutation, so 1x1 convolutions commute with it. One copy (none with a single window).
    """
    n, c, h, w = x.shape
    (win_h, win_w), n1, n2 = window, h // window[0], w // window[1]
    x = x.permute(0, 2, 3, 1).reshape(n, win_h, n1, win_w, n2, c)
    return x.permute(0, 2, 4, 1, 3, 5).reshape(n, h, w, c).permute(0, 3, 1, 2)


def window_reverse(x: torch.Tensor, window: Tuple[int, int]) -> torch.Tensor:
    """Inverse of :func:`window_partition`: ``(N, C, H, W) -> (N, C, H, W)``, channels-last."""
    n, c, h, w = x.shape
    (win_h, win_w), n1, n2 = window, h // window[0], w // window[1]
    x = x.permute(0, 2, 3, 1).reshape(n, n1, n2, win_h, win_w, c)
    return x.permute(0, 3, 1, 4, 2, 5).reshape(n, h, w, c).permute(0, 3, 1, 2)


def window_tokens(x: torch.Tensor, num_tokens: int, num_heads: int) -> torch.Tensor:
    """Window-ordered ``(N, heads * d, H, W)`` map -> ``(windows, heads, num_tokens, d)``.

    A view when ``x`` is channels-last (as :func:`window_partition` and 1x1 convolutions of
    its result leave it): ``scaled_dot_product_attention`` takes the transposed strides.
    """
    tokens = x.permute(0, 2, 3, 1).reshape(-1, num_tokens, num_heads, x.shape[1] // num_heads)
    return tokens.transpose(1, 2)


class iRMB(nn.Module):
    """Inverted Residual Mobile Block: ``(N, C_in, H, W) -> (N, C_out, H / stride, W / stride)``.

    ``norm`` -> [window attention on the normed input (``attn_pre``)] -> ``v`` (1x1 expansion
    + activation) -> depth-wise ``conv_local`` (+ inner skip) -> [``se``] -> ``proj`` (1x1)
    -> outer skip with drop path. Skips exist only when ``stride == 1`` and ``C_in == C_out``.

    Args:
        in_channels / out_channels: ``C_in`` / ``C_out``.
        expansion: hidden width is ``int(C_in * expansion)``.
        norm: ``'bn'`` (BatchNorm from ``norm_cfg``), ``'ln'`` (channel LayerNorm) or ``None``
            (no input norm, as in the stem block).
        act: activation of ``v`` (and of ``se``): ``'silu'`` or ``'gelu'``.
        dw_kernel_size / stride: of the depth-wise convolution.
        attention: window self-attention with ``C_in // dim_head`` heads.
        window_size: side of the attention windows; ``0`` means one window over the whole map.
        v_proj: whether ``v`` exists (the stem block has none).
        se: squeeze-excite after ``conv_local`` with the full width (stem block only).
        skip: allow the residual connections.
        drop_path_rate: stochastic depth on the outer residual branch.
        norm_cfg: BatchNorm config (``BN``/``SyncBN``), also used inside ``conv_local``.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 expansion: float,
                 norm: Optional[str],
                 act: str,
                 dw_kernel_size: int,
                 stride: int = 1,
                 attention: bool = False,
                 dim_head: int = 32,
                 window_size: int = 7,
                 v_proj: bool = True,
                 se: bool = False,
                 skip: bool = True,
                 drop_path_rate: float = 0.,
                 norm_cfg: dict = dict(type='BN', eps=1e-6)) -> None:
        super().__init__()
        hidden = int(in_channels * expansion)
        self.has_skip = skip and stride == 1 and in_channels == out_channels
        if norm == 'bn':
            self.norm = build_norm_layer(norm_cfg, in_channels)[1]
        elif norm == 'ln':
            self.norm = LayerNorm2d(in_channels)
        else:
            self.norm = nn.Identity()

        self.attention = attention
        if attention:
            if in_channels % dim_head:
                raise ValueError(f'attention width {in_channels} is not divisible by '
                                 f'dim_head {dim_head}')
            self.num_heads = in_channels // dim_head
            self.window_size = window_size
            self.scale = dim_head**-0.5
            self.qk = ConvNormAct(in_channels, 2 * in_channels, bias=True)
        self.v = ConvNormAct(in_channels, hidden, bias=True, act=act) if v_proj else nn.Identity()
        self.conv_local = ConvNormAct(hidden, hidden, dw_kernel_size, stride, groups=hidden,
                                      norm_cfg=norm_cfg, act='silu')
        self.se = SqueezeExcite(hidden, hidden, act) if se else nn.Identity()
        self.proj = ConvNormAct(hidden, out_channels)
        self.drop_path = DropPath(drop_path_rate) if drop_path_rate > 0 else nn.Identity()

    def window_attention(self, x: torch.Tensor) -> torch.Tensor:
        """Self-attention inside strided windows, values = the normed input; then ``v``.

        ``(N, C, H, W) -> (N, hidden, H, W)``. ``qk`` runs on the window-ordered map (a 1x1
        convolution commutes with the pixel permutation), so only the C-wide input is reordered
        and the 2C-wide ``qk`` output is split into q/k tokens by views.
        """
        height, width = x.shape[-2:]
        window = (self.window_size, self.window_size) if self.window_size > 0 else (height, width)
        pad_h, pad_w = -height % window[0], -width % window[1]
        # A trace (ONNX export) or torch.compile pads and crops always, by amounts that may be
        # 0: a Python branch would freeze the traced size's choice into a graph that takes any
        # size (compile: guard on it, and compile again whenever the choice flips).
        padded = torch.jit.is_tracing() or is_compiling() or bool(pad_h or pad_w)
        if padded:
            # Zero padding on the right and bottom; padded pixels are attended to, not masked.
            x = F.pad(x, (0, pad_w, 0, pad_h))
        num_tokens = window[0] * window[1]
        # Window ordering leaves the map channels-last; a contiguous stream stays contiguous.
        layout = torch.channels_last if x.is_contiguous(memory_format=torch.channels_last) \
            else torch.contiguous_format
        x = window_partition(x, window).contiguous(memory_format=layout)
        q, k = window_tokens(self.qk(x), num_tokens, 2 * self.num_heads).chunk(2, dim=1)
        out = F.scaled_dot_product_attention(q, k, window_tokens(x, num_tokens, self.num_heads),
                                             scale=self.scale)
        out = out.transpose(1, 2).reshape(x.shape[0], x.shape[2], x.shape[3], x.shape[1])
        x = window_reverse(out.permute(0, 3, 1, 2), window).contiguous(memory_format=layout)
        # ``v`` runs on the padded map, as in the authors' model, so FLOP counts stay theirs.
        x = self.v(x)
        return x[:, :, :height, :width] if padded else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = self.norm(x)
        x = self.window_attention(x) if self.attention else self.v(x)
        local = self.se(self.conv_local(x))
        # The adds run in place (autograd saves neither an activation's nor a conv's output)
        # where the sum keeps the branch's dtype (autocast: see add_residual).
        x = add_residual(local, x) if self.has_skip else local
        x = self.proj(x)
        return add_residual(self.drop_path(x), shortcut) if self.has_skip else x

    def switch_to_deploy(self) -> None:
        """Folds a BatchNorm input norm into ``v`` (a 1x1 conv that follows it directly).

        The BatchNorms inside ``conv_local``/``v``/... fold via their own ``switch_to_deploy``;
        :meth:`EMO.switch_to_deploy` calls both.
        """
        if isinstance(self.norm, _BatchNorm) and not self.attention and \
                isinstance(self.v, ConvNormAct):
            fold_norm_before(self.norm, self.v.conv)
            self.norm = nn.Identity()
