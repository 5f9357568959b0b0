"""A literal, deliberately plain re-implementation of the EfficientMod spec, independent of emo_mm.

Written from the spec (the issue / docs/efficientmod notes) only: maps are ``(N, H, W, C)``
between layers, convolutions run on contiguous NCHW copies, the context is tiled with
``repeat``, attention is an explicit softmax, every op is an ``F.*`` call on the parameters.
The tests compare emo_mm's backbone with it on identical random weights; tools/benchmark.py
times against it. Parameter names are the official checkpoint keys (``patch_embed.proj``,
``layers.{i}.blocks.{j}.mlp.context_layer.f`` ...), so state_dicts are swappable.
"""
import math
from typing import List

import torch
import torch.nn.functional as F
from torch import nn

# widths, EfficientMod blocks, attention blocks, (r of even blocks, r of odd blocks), att_ratio
SPEC = {
    'xxs': dict(dims=(32, 64, 128, 256), depths=(2, 2, 6, 2), att=(0, 0, 1, 2), r=(1, 6),
                att_ratio=(4, 4, 4, 4)),
    'xs': dict(dims=(32, 64, 144, 288), depths=(3, 3, 4, 2), att=(0, 0, 3, 3), r=(1, 4),
               att_ratio=(4, 4, 4, 4)),
    's': dict(dims=(32, 64, 144, 312), depths=(4, 4, 8, 4), att=(0, 0, 4, 4), r=(1, 6),
              att_ratio=(4, 4, 4, 5)),
    's_conv': dict(dims=(40, 80, 160, 344), depths=(4, 4, 12, 8), att=(0, 0, 0, 0), r=(1, 6),
                   att_ratio=(4, 4, 4, 4)),
}
LN_EPS = 1e-5
HEADS = 8


class Holder(nn.Module):
    """A bare container: only gives the parameters their checkpoint names."""


def linear(cin: int, cout: int, bias: bool = True) -> nn.Linear:
    return nn.Linear(cin, cout, bias=bias)


def layer_norm(x: torch.Tensor, norm: nn.LayerNorm) -> torch.Tensor:
    return F.layer_norm(x, (x.shape[-1], ), norm.weight, norm.bias, LN_EPS)


def drop_path(x: torch.Tensor, rate: float, training: bool) -> torch.Tensor:
    if not training or rate == 0:
        return x
    keep = (torch.rand(x.shape[0], *([1] * (x.dim() - 1))) >= rate).to(x.dtype)
    return x * keep / (1 - rate)


class RefPatchEmbed(nn.Module):
    """``(N, H, W, Cin) -> (N, H', W', Cout)``: NCHW conv, then LayerNorm over channels."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, pad: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(cin, cout, kernel, stride, pad)
        self.norm = nn.LayerNorm(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 3, 1, 2).contiguous()
        x = F.conv2d(x, self.proj.weight, self.proj.bias, self.proj.stride, self.proj.padding)
        return layer_norm(x.permute(0, 2, 3, 1).contiguous(), self.norm)


class RefModBlock(nn.Module):
    """``x + drop_path(gamma_1 * fc2(act(fc1(y)) * tile(g(gelu(dw7x7(f(y)))), r)))``, y = LN(x)."""

    def __init__(self, dim: int, r: int, drop_path_rate: float, gamma: float = 1e-4) -> None:
        super().__init__()
        self.r, self.drop_path_rate = r, drop_path_rate
        self.norm = nn.LayerNorm(dim)
        self.mlp = Holder()
        self.mlp.fc1 = linear(dim, dim * r)
        self.mlp.context_layer = Holder()
        self.mlp.context_layer.f = linear(dim, dim)
        self.mlp.context_layer.g = linear(dim, dim)
        self.mlp.context_layer.context_list = nn.ModuleList(
            [nn.Conv2d(dim, dim, 7, 1, 3, groups=dim)])
        self.mlp.fc2 = linear(dim * r, dim)
        self.gamma_1 = nn.Parameter(gamma * torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m, c = self.mlp, self.mlp.context_layer
        y = layer_norm(x, self.norm)
        ctx = F.linear(y, c.f.weight, c.f.bias).permute(0, 3, 1, 2).contiguous()
        dw = c.context_list[0]
        ctx = F.gelu(F.conv2d(ctx, dw.weight, dw.bias, 1, 3, 1, dw.groups))
        ctx = F.linear(ctx.permute(0, 2, 3, 1).contiguous(), c.g.weight, c.g.bias)
        v = F.linear(y, m.fc1.weight, m.fc1.bias)
        if self.r > 1:
            v = F.gelu(v)
        out = F.linear(v * ctx.repeat(1, 1, 1, self.r), m.fc2.weight, m.fc2.bias)
        return x + drop_path(self.gamma_1 * out, self.drop_path_rate, self.training)


class RefAttnBlock(nn.Module):
    """Pre-norm global self-attention (8 heads of max(C // 8, 32)) + GELU MLP, no layer scale."""

    def __init__(self, dim: int, ratio: float, drop_path_rate: float) -> None:
        super().__init__()
        self.head_dim = max(dim // HEADS, 32)
        self.drop_path_rate = drop_path_rate
        inner = HEADS * self.head_dim
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Holder()
        self.attn.qkv = linear(dim, 3 * inner, bias=False)
        self.attn.proj = linear(inner, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Holder()
        self.mlp.fc1 = linear(dim, int(dim * ratio))
        self.mlp.fc2 = linear(int(dim * ratio), dim)

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        n, length, _ = x.shape
        qkv = F.linear(x, self.attn.qkv.weight)  # (n, L, 3 * heads * d): q | k | v, head-major
        qkv = qkv.reshape(n, length, 3, HEADS, self.head_dim)
        q = qkv[:, :, 0].transpose(1, 2)  # (n, heads, L, d)
        k = qkv[:, :, 1].transpose(1, 2)
        v = qkv[:, :, 2].transpose(1, 2)
        scores = (q @ k.transpose(-1, -2)) / math.sqrt(self.head_dim)
        out = torch.softmax(scores, dim=-1) @ v
        out = out.transpose(1, 2).reshape(n, length, HEADS * self.head_dim)
        return F.linear(out, self.attn.proj.weight, self.attn.proj.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, h, w, c = x.shape
        x = x.reshape(n, h * w, c)
        x = x + drop_path(self.attention(layer_norm(x, self.norm1)), self.drop_path_rate,
                          self.training)
        y = F.gelu(F.linear(layer_norm(x, self.norm2), self.mlp.fc1.weight, self.mlp.fc1.bias))
        y = F.linear(y, self.mlp.fc2.weight, self.mlp.fc2.bias)
        x = x + drop_path(y, self.drop_path_rate, self.training)
        return x.reshape(n, h, w, c)


class ReferenceEfficientMod(nn.Module):
    """``(N, 3, H, W)`` -> the four stage outputs before downsampling, NCHW, strides 4..32."""

    def __init__(self, arch: str, drop_path_rate: float = 0.) -> None:
        super().__init__()
        s = SPEC[arch]
        dims = s['dims']
        self.patch_embed = RefPatchEmbed(3, dims[0], 7, 4, 3)
        total = sum(s['depths']) + sum(s['att'])
        rates = [drop_path_rate * i / max(total - 1, 1) for i in range(total)]
        self.layers = nn.ModuleList()
        for i in range(4):
            layer = Holder()
            blocks = [RefModBlock(dims[i], s['r'][j % 2], rates.pop(0))
                      for j in range(s['depths'][i])]
            blocks += [RefAttnBlock(dims[i], s['att_ratio'][i], rates.pop(0))
                       for _ in range(s['att'][i])]
            layer.blocks = nn.ModuleList(blocks)
            if i < 3:
                layer.downsample = RefPatchEmbed(dims[i], dims[i + 1], 3, 2, 1)
            self.layers.append(layer)

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        x = self.patch_embed(x.permute(0, 2, 3, 1).contiguous())
        outs = []
        for i, layer in enumerate(self.layers):
            for block in layer.blocks:
                x = block(x)
            outs.append(x.permute(0, 3, 1, 2).contiguous())
            if i < 3:
                x = layer.downsample(x)
        return outs


def randomize(model: nn.Module, seed: int = 0) -> None:
    """Random weights, LayerNorm affines and layer scales (around 1, not 1e-4 / 1 / 0), so that
    any wrong wiring changes the outputs visibly."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in sorted(model.state_dict().items()):
            if t.dim() == 1 and (name.endswith('gamma_1') or 'norm' in name.split('.')[-2]) \
                    and name.endswith(('weight', 'gamma_1')):
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
            else:
                fan = t[0].numel() if t.dim() > 1 else 4
                t.copy_(torch.randn(t.shape, generator=g) / math.sqrt(fan))


def param_count(arch: str) -> int:
    return sum(p.numel() for p in ReferenceEfficientMod(arch).parameters())
