"""The blocks of EfficientMod (ICLR 2024, "Efficient Modulation for Vision Networks").

Every module here takes and returns channels-last maps ``(N, H, W, C)``, as the authors' model
does, so that its Linear layers are plain GEMMs over the pixels and its LayerNorms normalise the
contiguous last dimension. The convolutions run on ``permute(0, 3, 1, 2)`` views of those maps:
a channels-last NCHW tensor, which oneDNN convolves without a layout copy and returns
channels-last, so permuting back is again a view.

Attribute names follow the authors' release (``mlp.context_layer.context_list.0``,
``attn.qkv``, ``gamma_1`` ...) so that their ImageNet checkpoints load without renaming.
Every Linear/Conv2d runs as a module on the shapes the authors ran it on, so module-hook FLOP
counters see what they saw.
"""
import torch
import torch.nn.functional as F
from mmcv.cnn.bricks import DropPath
from torch import nn

from .irmb import Activation
from .residual import add_residual, addcmul_residual


def conv_nhwc(conv: nn.Conv2d, x: torch.Tensor, channels_last: bool = True) -> torch.Tensor:
    """Applies an NCHW ``conv`` to an ``(N, H, W, C)`` map; returns ``(N, H', W', C')``.

    ``channels_last``: both permutes are views when ``x`` is contiguous, the convolution sees a
    channels-last tensor and returns one. Otherwise it runs on a contiguous NCHW copy (as the
    authors' model) and returns a (non-contiguous) view of its NCHW output.
    """
    if channels_last:
        return conv(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
    return conv(x.permute(0, 3, 1, 2).contiguous()).permute(0, 2, 3, 1)


class PatchEmbed(nn.Module):
    """Strided convolution ``proj`` then LayerNorm ``norm``: ``(N, H, W, Cin) -> (N, H', W', C)``.

    The stem (7x7, stride 4, padding 3) and the downsampling layers (3x3, stride 2, padding 1).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int,
                 padding: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding)
        self.norm = nn.LayerNorm(out_channels)
        self.channels_last = True  # the convolution's layout, set by the backbone

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # .contiguous() is a no-op on the channels-last conv output, and a copy otherwise (e.g.
        # a 3-channel NCHW image, whose conv output PyTorch keeps NCHW).
        return self.norm(conv_nhwc(self.proj, x, self.channels_last).contiguous())


class ContextLayer(nn.Module):
    """The modulation context: ``g(GELU(dwconv7x7(f(y))))``, ``(N, H, W, C) -> (N, H, W, C)``.

    ``context_list`` holds the one depth-wise convolution (the authors' name for a list that
    could hold several kernel sizes; all their variants use one 7x7).
    """

    def __init__(self, channels: int, kernel_size: int = 7) -> None:
        super().__init__()
        self.f = nn.Linear(channels, channels)
        self.g = nn.Linear(channels, channels)
        self.context_list = nn.ModuleList([
            nn.Conv2d(channels, channels, kernel_size, padding=kernel_size // 2,
                      groups=channels)
        ])
        self.act = Activation('gelu')
        self.channels_last = True  # the convolution's layout, set by the backbone

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # On CPU the depth-wise convolution is ~2x faster on the channels-last view than on the
        # contiguous NCHW copy the authors make (docs/benchmark.md).
        context = conv_nhwc(self.context_list[0], self.f(x), self.channels_last)
        return self.g(self.act(context))


class ModulationMlp(nn.Module):
    """``fc2(act(fc1(y)) * tile(context(y), r))``: ``(N, H, W, C) -> (N, H, W, C)``.

    ``act`` is GELU for ``r > 1`` and the identity for ``r == 1`` (as the authors'
    ``expand_dim``). The context (width C) is tiled ``r`` times along the channels, i.e. hidden
    channel ``k * C + c`` is scaled by context channel ``c``; done here by broadcasting over an
    ``(..., r, C)`` view instead of materialising the repeated tensor.
    """

    def __init__(self, channels: int, expansion: int) -> None:
        super().__init__()
        self.expansion = expansion
        self.fc1 = nn.Linear(channels, channels * expansion)
        self.context_layer = ContextLayer(channels)
        self.fc2 = nn.Linear(channels * expansion, channels)
        self.act = Activation('gelu') if expansion > 1 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        context = self.context_layer(x)
        value = self.act(self.fc1(x))
        channels = context.shape[-1]
        if torch.is_grad_enabled() or torch.jit.is_tracing():
            # Autograd saves both factors anyway; the product is a fresh tensor. (A trace for
            # ONNX export records this form: ONNX has no in-place product on a view.)
            value = (value.unflatten(-1, (self.expansion, channels)) *
                     context.unsqueeze(-2)).flatten(-2)
        else:
            # Inference: ``value`` is a fresh fc1/GELU output no one else reads.
            value.unflatten(-1, (self.expansion, channels)).mul_(context.unsqueeze(-2))
        return self.fc2(value)


class EfficientModBlock(nn.Module):
    """``x + drop_path(gamma_1 * mlp(norm(x)))``, ``(N, H, W, C) -> (N, H, W, C)``.

    Args:
        channels: C.
        expansion: r, the hidden width of ``mlp`` is ``r * C``.
        drop_path_rate: stochastic depth of the residual branch.
        layer_scale_init_value: initial value of the per-channel layer scale ``gamma_1``.
    """

    def __init__(self, channels: int, expansion: int, drop_path_rate: float = 0.,
                 layer_scale_init_value: float = 1e-4) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(channels)
        self.mlp = ModulationMlp(channels, expansion)
        self.gamma_1 = nn.Parameter(torch.full((channels, ), float(layer_scale_init_value)))
        self.drop_path = DropPath(drop_path_rate) if drop_path_rate > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.mlp(self.norm(x))
        if self.training and isinstance(self.drop_path, DropPath):
            return x + self.drop_path(self.gamma_1 * out)
        # One pass: x + gamma * out, written over the fresh fc2 output when nothing reads it
        # later (fc2's backward needs its input, not its output; ONNX export traces the plain
        # form) and the sum keeps its dtype (under autocast the stream stays float32).
        return addcmul_residual(x, out, self.gamma_1)


class Attention(nn.Module):
    """Global multi-head self-attention over tokens ``(N, L, C) -> (N, L, C)``.

    ``num_heads`` heads of ``head_dim = max(C // num_heads, 32)`` channels (so the heads can be
    wider than C for narrow stages); ``qkv`` without bias, laid out ``q | k | v``, each
    head-major; scaled by ``head_dim ** -0.5``.
    """

    def __init__(self, channels: int, num_heads: int = 8) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = max(channels // num_heads, 32)
        inner = num_heads * self.head_dim
        self.qkv = nn.Linear(channels, 3 * inner, bias=False)
        self.proj = nn.Linear(inner, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, length, _ = x.shape
        # q, k, v as (N, heads, L, d) views of the qkv output: the CPU flash-attention kernel
        # takes any strides with a unit last one.
        q, k, v = self.qkv(x).view(n, length, 3, self.num_heads, self.head_dim) \
            .permute(2, 0, 3, 1, 4).unbind(0)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(n, length, -1))


class AttentionMlp(nn.Module):
    """``fc2(GELU(fc1(x)))``, hidden width ``ratio * C``; any ``(..., C)``."""

    def __init__(self, channels: int, hidden_channels: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(channels, hidden_channels)
        self.act = Activation('gelu')
        self.fc2 = nn.Linear(hidden_channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class AttentionBlock(nn.Module):
    """Pre-norm transformer block over all ``H * W`` pixels, no layer scale:
    ``x + attn(norm1(x))``, then ``x + mlp(norm2(x))``; ``(N, H, W, C) -> (N, H, W, C)``.
    """

    def __init__(self, channels: int, mlp_ratio: float = 4., num_heads: int = 8,
                 drop_path_rate: float = 0.) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(channels)
        self.attn = Attention(channels, num_heads)
        self.norm2 = nn.LayerNorm(channels)
        self.mlp = AttentionMlp(channels, int(channels * mlp_ratio))
        self.drop_path = DropPath(drop_path_rate) if drop_path_rate > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, h, w, c = x.shape
        x = x.reshape(n, h * w, c)
        # The adds run in place on the fresh proj / fc2 outputs, whose values no backward needs
        # (out of place under autocast, where the float32 stream would not fit them).
        x = add_residual(self.drop_path(self.attn(self.norm1(x))), x)
        x = add_residual(self.drop_path(self.mlp(self.norm2(x))), x)
        return x.view(n, h, w, c)
