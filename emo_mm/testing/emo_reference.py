"""A literal, deliberately plain re-implementation of the EMO spec, independent of emo_mm.

Written from the spec (the EMO architecture document) only: NCHW everywhere, explicit window gathering with
index lists, explicit softmax attention, F.* calls instead of fused paths. The tests compare
emo_mm's backbone with it on identical random weights; tools/benchmark.py uses it as the
baseline. Module names follow the checkpoint keys of the spec, so state_dicts are swappable.
"""
import math
from typing import List, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

SPEC = {
    '1m': dict(depths=(2, 2, 8, 3), stem=24, dims=(32, 48, 80, 168), exp=(2.0, 2.5, 3.0, 3.5),
               heads_dim=(16, 16, 20, 21)),
    '2m': dict(depths=(3, 3, 9, 3), stem=24, dims=(32, 48, 120, 200), exp=(2.0, 2.5, 3.0, 3.5),
               heads_dim=(16, 16, 20, 20)),
    '5m': dict(depths=(3, 3, 9, 3), stem=24, dims=(48, 72, 160, 288), exp=(2.0, 3.0, 4.0, 4.0),
               heads_dim=(24, 24, 32, 32)),
    '6m': dict(depths=(3, 3, 9, 3), stem=24, dims=(48, 72, 160, 320), exp=(2.0, 3.0, 4.0, 5.0),
               heads_dim=(16, 24, 20, 32)),
}
EPS = 1e-6


class Holder(nn.Module):
    """A bare container: only gives the parameters their checkpoint names."""


def conv(cin: int, cout: int, k: int = 1, stride: int = 1, groups: int = 1,
         bias: bool = False) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, stride, math.ceil((k - stride) / 2), groups=groups, bias=bias)


class RefBlock(nn.Module):

    def __init__(self, cin: int, cout: int, expansion: float, stage: int, stride: int,
                 attention: bool, skip: bool, dim_head: int, window: int, stem: bool = False):
        super().__init__()
        mid = int(cin * expansion)
        self.stage, self.stride, self.attention, self.skip = stage, stride, attention, skip
        self.window, self.dim_head, self.stem = window, dim_head, stem
        self.act = F.silu if stage <= 2 else F.gelu
        k = 3 if stage <= 2 else 5
        if not stem:
            self.norm = Holder()
            if stage <= 2:
                self.norm = nn.BatchNorm2d(cin, eps=EPS)
            else:
                self.norm.norm = nn.LayerNorm(cin, eps=EPS)
            self.v = Holder()
            self.v.conv = conv(cin, mid, bias=True)
        if attention:
            self.qk = Holder()
            self.qk.conv = conv(cin, 2 * cin, bias=True)
        self.conv_local = Holder()
        self.conv_local.conv = conv(mid, mid, k, stride, groups=mid)
        self.conv_local.norm = nn.BatchNorm2d(mid, eps=EPS)
        if stem:
            self.se = Holder()
            self.se.conv_reduce = nn.Conv2d(mid, round(mid * 1.0), 1, bias=True)
            self.se.conv_expand = nn.Conv2d(round(mid * 1.0), mid, 1, bias=True)
        self.proj = Holder()
        self.proj.conv = conv(mid, cout)
        self.drop_path = 0.0

    def apply_norm(self, x: torch.Tensor) -> torch.Tensor:
        if self.stage <= 2:
            return self.norm(x)
        ln = self.norm.norm
        return F.layer_norm(x.permute(0, 2, 3, 1), (x.shape[1], ), ln.weight, ln.bias,
                            EPS).permute(0, 3, 1, 2)

    def apply_v(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.v.conv(x))

    def attend(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        wh, ww = (self.window, self.window) if self.window > 0 else (h, w)
        hp, wp = math.ceil(h / wh) * wh, math.ceil(w / ww) * ww
        x = F.pad(x, (0, wp - w, 0, hp - h))
        qk = self.qk.conv(x)
        n1, n2 = hp // wh, wp // ww
        heads = c // self.dim_head
        out = torch.zeros_like(x)
        for a in range(n1):
            for bb in range(n2):
                rows = torch.tensor([r * n1 + a for r in range(wh)])
                cols = torch.tensor([cc * n2 + bb for cc in range(ww)])
                sub_qk = qk[:, :, rows][:, :, :, cols].flatten(2)  # (b, 2c, L)
                sub_x = x[:, :, rows][:, :, :, cols].flatten(2)  # (b, c, L)
                q = sub_qk[:, :c].reshape(b, heads, self.dim_head, -1).transpose(-1, -2)
                k = sub_qk[:, c:].reshape(b, heads, self.dim_head, -1).transpose(-1, -2)
                v = sub_x.reshape(b, heads, self.dim_head, -1).transpose(-1, -2)
                attn = torch.softmax(q @ k.transpose(-1, -2) * self.dim_head**-0.5, dim=-1)
                o = (attn @ v).transpose(-1, -2).reshape(b, c, wh, ww)
                out[:, :, rows.view(-1, 1), cols.view(1, -1)] = o
        return self.apply_v(out)[:, :, :h, :w]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        if not self.stem:
            x = self.apply_norm(x)
            x = self.attend(x) if self.attention else self.apply_v(x)
        y = F.silu(self.conv_local.norm(self.conv_local.conv(x)))
        if self.stem:
            s = y.mean((2, 3), keepdim=True)
            s = self.se.conv_expand(F.silu(self.se.conv_reduce(s)))
            y = y * torch.sigmoid(s)
        x = x + y if self.skip else y
        x = self.proj.conv(x)
        if self.skip:
            if self.training and self.drop_path > 0:
                keep = (torch.rand(x.shape[0], 1, 1, 1) >= self.drop_path).to(x.dtype)
                x = x * keep / (1 - self.drop_path)
            x = shortcut + x
        return x


class ReferenceEMO(nn.Module):
    """Returns the five stage outputs (strides 2, 4, 8, 16, 32)."""

    def __init__(self, arch: str, window_size: int = 7):
        super().__init__()
        s = SPEC[arch]
        stem = Holder()
        stem.convs = nn.ModuleList([nn.Sequential(
            nn.Conv2d(3, s['stem'], 3, 2, 1, bias=True), nn.BatchNorm2d(s['stem'], eps=EPS))])
        self.stage0 = nn.ModuleList([
            stem,
            RefBlock(s['stem'], s['stem'], 1.0, 1, 1, False, False, 1, 0, stem=True)])
        cin = s['stem']
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
        stem = self.stage0[0].convs[0]
        x = stem(x)
        x = self.stage0[1](x)
        outs = [x]
        for i in range(1, 5):
            for blk in getattr(self, f'stage{i}'):
                x = blk(x)
            outs.append(x)
        return outs


def randomize(model: nn.Module, seed: int = 0) -> None:
    """Random weights *and* norm statistics, so that a wrong BN/LN wiring shows."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in sorted(model.state_dict().items()):
            if name.endswith('num_batches_tracked'):
                continue
            if name.endswith('running_var'):
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
            elif name.endswith(('norm.weight', '1.weight')) and t.dim() == 1:
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
            else:
                fan = t[0].numel() if t.dim() > 1 else 4
                t.copy_(torch.randn(t.shape, generator=g) / math.sqrt(fan))


def stage_channels(arch: str) -> Tuple[int, ...]:
    return (SPEC[arch]['stem'], *SPEC[arch]['dims'])
