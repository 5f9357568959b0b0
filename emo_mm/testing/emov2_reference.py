"""A literal, deliberately plain re-implementation of the EMOv2 spec, independent of emo_mm.

Written from the spec (the EMOv2 architecture document) only: NCHW everywhere, every attention
window gathered with explicit index lists in a Python loop, explicit softmax, F.* calls instead
of fused paths, the det computation (``conv_local`` = BN + SiLU). The tests compare emo_mm's
backbone with it on identical random weights; tools/benchmark.py uses it as the baseline. Module
names follow the checkpoint keys of the spec, so state_dicts are swappable.
"""
import math
from typing import List, Tuple

import torch
import torch.nn.functional as F
from torch import nn

SPEC = {
    '1m': dict(depths=(2, 2, 8, 3), dims=(32, 48, 80, 180), exp=(2.0, 2.5, 3.0, 3.5),
               heads_dim=(16, 16, 20, 20)),
    '2m': dict(depths=(3, 3, 9, 3), dims=(32, 48, 120, 200), exp=(2.0, 2.5, 3.0, 3.5),
               heads_dim=(16, 16, 20, 20)),
    '5m': dict(depths=(3, 3, 9, 3), dims=(48, 72, 160, 288), exp=(2.0, 3.0, 4.0, 4.0),
               heads_dim=(16, 24, 32, 32)),
    '20m': dict(depths=(3, 3, 13, 3), dims=(64, 128, 320, 448), exp=(2.0, 3.0, 4.0, 4.0),
                heads_dim=(16, 32, 32, 32)),
}
EPS = 1e-6
LAYER_SCALE = 1e-6


class Holder(nn.Module):
    """A bare container: only gives the parameters their checkpoint names."""


def conv(cin: int, cout: int, k: int = 1, stride: int = 1, groups: int = 1,
         bias: bool = False) -> nn.Conv2d:
    """The spec's ConvNormAct padding, ``ceil((k - 1 + 1 - stride) / 2)``."""
    return nn.Conv2d(cin, cout, k, stride, math.ceil((k - stride) / 2), groups=groups, bias=bias)


def conv_holder(cin: int, cout: int, **kwargs) -> Holder:
    holder = Holder()
    holder.conv = conv(cin, cout, **kwargs)
    return holder


def window_indices(n: int, size: int, a: int, strided: bool) -> torch.Tensor:
    """Rows (or columns) of window ``a`` out of ``n`` windows of ``size``: the strided grid
    ``r * n + a`` ("remote") or the tile ``a * size + r`` ("close")."""
    return torch.tensor([r * n + a if strided else a * size + r for r in range(size)])


def hybrid_attention(x: torch.Tensor, qk: nn.Conv2d, v: nn.Conv2d, dim_head: int,
                     window: int) -> torch.Tensor:
    """EW_MHSA_Hybrid: pad, project, attend in remote and close windows, sum, crop."""
    b, c, h, w = x.shape
    wh, ww = (window, window) if window > 0 else (h, w)
    hp, wp = math.ceil(h / wh) * wh, math.ceil(w / ww) * ww
    x = F.pad(x, (0, wp - w, 0, hp - h))  # zeros at the bottom and right, never masked
    qk_map = qk(x)
    v_map = F.gelu(v(x))
    mid = v_map.shape[1]
    heads = c // dim_head
    n1, n2 = hp // wh, wp // ww
    out = torch.zeros_like(v_map)
    for strided in (True, False):
        for a in range(n1):
            for bb in range(n2):
                rows = window_indices(n1, wh, a, strided)
                cols = window_indices(n2, ww, bb, strided)
                sub_qk = qk_map[:, :, rows][:, :, :, cols].flatten(2)  # (b, 2c, L)
                sub_v = v_map[:, :, rows][:, :, :, cols].flatten(2)  # (b, mid, L)
                q = sub_qk[:, :c].reshape(b, heads, dim_head, -1).transpose(-1, -2)
                k = sub_qk[:, c:].reshape(b, heads, dim_head, -1).transpose(-1, -2)
                vv = sub_v.reshape(b, heads, mid // heads, -1).transpose(-1, -2)
                scores = q @ k.transpose(-1, -2) * dim_head**-0.5
                attn = torch.exp(scores - scores.amax(-1, keepdim=True))
                attn = attn / attn.sum(-1, keepdim=True)
                o = (attn @ vv).transpose(-1, -2).reshape(b, mid, wh, ww)
                index = (slice(None), slice(None), rows.view(-1, 1), cols.view(1, -1))
                out[index] = out[index] + o
    return out[:, :, :h, :w]


class RefBlock(nn.Module):
    """One iiRMB block (stage 1-4)."""

    def __init__(self, cin: int, cout: int, expansion: float, stage: int, stride: int,
                 attention: bool, skip: bool, dim_head: int, window: int):
        super().__init__()
        mid = int(cin * expansion)
        self.stage, self.attention, self.window, self.dim_head = stage, attention, window, dim_head
        self.skip = skip and stride == 1 and cin == cout
        self.act = F.silu if stage <= 2 else F.gelu
        if stage <= 2:
            self.norm = nn.BatchNorm2d(cin, eps=EPS)
        else:
            self.norm = Holder()
            self.norm.norm = nn.LayerNorm(cin, eps=EPS)
        op = Holder()
        if attention:
            op.qk = conv_holder(cin, 2 * cin, bias=True)
            op.v = conv_holder(cin, mid, bias=True)
        else:
            op.net = conv_holder(cin, mid, bias=True)
        self.eops = nn.ModuleList([op])
        self.conv_local = conv_holder(mid, mid, k=5, stride=stride, groups=mid)
        self.conv_local.norm = nn.BatchNorm2d(mid, eps=EPS)
        self.proj = conv_holder(mid, cout)
        self.ls = Holder()
        self.ls.gamma = nn.Parameter(torch.full((1, cout, 1, 1), LAYER_SCALE))
        self.drop_path = 0.0

    def apply_norm(self, x: torch.Tensor) -> torch.Tensor:
        if self.stage <= 2:
            return self.norm(x)
        ln = self.norm.norm
        return F.layer_norm(x.permute(0, 2, 3, 1), (x.shape[1], ), ln.weight, ln.bias,
                            EPS).permute(0, 3, 1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = self.apply_norm(x)
        op = self.eops[0]
        if self.attention:
            x = hybrid_attention(x, op.qk.conv, op.v.conv, self.dim_head, self.window)
        else:
            x = self.act(op.net.conv(x))
        y = F.silu(self.conv_local.norm(self.conv_local.conv(x)))
        x = x + y if self.skip else y
        x = self.proj.conv(x) * self.ls.gamma
        if self.skip:
            if self.training and self.drop_path > 0:
                keep = (torch.rand(x.shape[0], 1, 1, 1) >= self.drop_path).to(x.dtype)
                x = x * keep / (1 - self.drop_path)
            x = shortcut + x
        return x


class RefStemLayer(nn.Module):
    """``act(norm(conv(x)))`` with the norm and activation optional (stem layers)."""

    def __init__(self, cin: int, cout: int, k: int, stride: int, groups: int, bias: bool,
                 norm_act: bool):
        super().__init__()
        self.conv = conv(cin, cout, k, stride, groups, bias)
        if norm_act:
            self.norm = nn.BatchNorm2d(cout, eps=EPS)
        self.norm_act = norm_act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        return F.silu(self.norm(x)) if self.norm_act else x


class ReferenceEMOv2(nn.Module):
    """Returns the five stage outputs (strides 2, 4, 8, 16, 32)."""

    def __init__(self, arch: str, window_size: int = 10):
        super().__init__()
        s = SPEC[arch]
        stem = s['dims'][0] // 2
        self.stage0 = nn.ModuleList([
            RefStemLayer(3, stem, 3, 2, 1, True, True),
            RefStemLayer(stem, stem, 3, 1, stem, False, True),
            RefStemLayer(stem, stem, 1, 1, 1, False, False)])
        cin = stem
        for i in range(4):
            blocks = []
            for j in range(s['depths'][i]):
                first = j == 0
                blocks.append(RefBlock(cin, s['dims'][i], s['exp'][i] * (2 if first else 1),
                                       i + 1, 2 if first else 1, (i >= 2) and not first,
                                       not first, s['heads_dim'][i], window_size))
                cin = s['dims'][i]
            setattr(self, f'stage{i + 1}', nn.ModuleList(blocks))

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        outs = []
        for i in range(5):
            for layer in getattr(self, f'stage{i}'):
                x = layer(x)
            outs.append(x)
        return outs


def randomize(model: nn.Module, seed: int = 0) -> None:
    """Random weights *and* norm statistics, so that a wrong BN/LN wiring shows. Layer scales
    are drawn near 1 (not the 1e-6 init), so that every block's branch counts in the outputs."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in sorted(model.state_dict().items()):
            if name.endswith('num_batches_tracked'):
                continue
            if name.endswith(('running_var', 'ls.gamma')):
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
            elif name.endswith('norm.weight') and t.dim() == 1:
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
            else:
                fan = t[0].numel() if t.dim() > 1 else 4
                t.copy_(torch.randn(t.shape, generator=g) / math.sqrt(fan))


def stage_channels(arch: str) -> Tuple[int, ...]:
    return (SPEC[arch]['dims'][0] // 2, *SPEC[arch]['dims'])
