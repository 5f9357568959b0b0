"""EMO as its ONNX graph runs it: the deploy form's function, written for onnxruntime.

:func:`export_form` swaps an EMO backbone (deploy form, BatchNorm folded) for
:class:`GraphEMO`, which holds the same parameters and computes the same function (equal in
float64 to rounding, ``tests/test_deploy_graphs.py``), with fewer layout and shape operations
in the exported graph. onnxruntime runs convolutions in its blocked ``NCHWc`` layout; every
tensor that leaves that layout costs a reorder, and every shape computation a few small
operators per call. Against the PyTorch module (whose permutes are free views of
channels-last maps but real copies in a graph):

* the LayerNorm stages (3-4) normalise, attend and run ``v`` on channels-last maps: one
  transpose in (onnxruntime merges it into the reorder out of ``NCHWc``), LayerNormalization
  over the last axis (onnxruntime's fused kernel), window tokens by a reshape and one transpose,
  heads merged and windows reversed by one transpose, ``v`` and ``proj`` as matrix products
  with their bias (onnxruntime's ``Gemm``), exact GELU as one op (onnxruntime fuses the
  exported erf form into ``Gelu``), the residual adds on the same maps, and the depth-wise
  convolution on an NCHW view of them (both transposes merged into onnxruntime's reorders in
  and out of ``NCHWc``);
* ``v`` runs after the window padding is cropped (a pointwise map: the same values, fewer
  pixels; the PyTorch module runs it before, on the padded map, as the authors do);
* the attention scale is folded into ``q``'s projection;
* a static graph (every size a constant) pads, crops and reorders windows only where the size
  needs it, so the graph holds no shape arithmetic; a dynamic one computes them per call.

Other backbones are exported as they are.
"""
from typing import Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..models.backbones.emo import EMO
from ..models.layers.irmb import Activation, ConvNormAct, LayerNorm2d, SqueezeExcite, iRMB


def silu(x: Tensor) -> Tensor:
    """``x * sigmoid(x)``."""
    return x * torch.sigmoid(x)


def activation(module: nn.Module, x: Tensor) -> Tensor:
    """``module`` (an :class:`Activation` or an identity) applied to ``x``."""
    if not isinstance(module, Activation):
        return x
    return silu(x) if module.kind == 'silu' else F.gelu(x)


def conv_act(block: ConvNormAct, x: Tensor) -> Tensor:
    """A deploy-form :class:`ConvNormAct` (its norm folded into the convolution)."""
    if not isinstance(block.norm, nn.Identity):
        raise ValueError('the export form needs the deploy form: call switch_to_deploy()')
    return activation(block.act, block.conv(x))


def pointwise(block: ConvNormAct, x: Tensor) -> Tensor:
    """A deploy-form 1x1 :class:`ConvNormAct` on a channels-last ``(..., C)`` map."""
    return activation(block.act, F.linear(x, block.conv.weight[:, :, 0, 0], block.conv.bias))


class GraphIRMB(nn.Module):
    """An :class:`iRMB` in its deploy form.

    BatchNorm stages: ``(N, C_in, H, W) -> (N, C_out, H', W')``. LayerNorm stages run
    channels-last, ``(N, H, W, C_in) -> (N, H', W', C_out)``: the norm, the attention, ``v``,
    ``proj`` and both skips on ``(..., C)`` maps, only the depth-wise convolution on an NCHW
    view (onnxruntime merges both transposes into its reorders in and out of ``NCHWc``).
    ``static``: the input size is a constant of the trace (no padding or reordering that the
    size does not need).
    """

    def __init__(self, block: iRMB, static: bool) -> None:
        super().__init__()
        self.block = block
        self.static = static
        self.channels_last = isinstance(block.norm, LayerNorm2d)
        if block.attention:
            dim = block.qk.conv.in_channels
            weight = block.qk.conv.weight.detach()[:, :, 0, 0]
            bias = block.qk.conv.bias.detach()
            # q's projection carries the attention scale; k's stays as it is.
            self.register_buffer('q_weight', weight[:dim] * block.scale, persistent=False)
            self.register_buffer('q_bias', bias[:dim] * block.scale, persistent=False)
            self.register_buffer('k_weight', weight[dim:], persistent=False)
            self.register_buffer('k_bias', bias[dim:], persistent=False)

    def window_attention(self, x: Tensor) -> Tensor:
        """Attention in strided windows of a normed channels-last map ``(N, H, W, C)``, as
        :meth:`iRMB.window_attention` up to ``v``; ``(N, H, W, C)``."""
        block = self.block
        n, height, width, channels = x.shape
        window = (block.window_size, ) * 2 if block.window_size > 0 else (height, width)
        pad_h, pad_w = -height % window[0], -width % window[1]
        padded = not self.static or bool(pad_h or pad_w)
        if padded:  # zeros on the right and bottom, attended to (not masked), as the authors
            x = F.pad(x, (0, 0, 0, pad_w, 0, pad_h))
        rows, cols = x.shape[1] // window[0], x.shape[2] // window[1]
        heads = block.num_heads
        dim, tokens = channels // heads, window[0] * window[1]
        # Window (a, b) holds the pixels (r * rows + a, c * cols + b): (windows, tokens, C) by
        # one transpose (none for a single window).
        x = x.reshape(n, window[0], rows, window[1], cols, channels)
        if not self.static or rows * cols > 1:
            x = x.permute(0, 2, 4, 1, 3, 5)
        x = x.reshape(-1, tokens, channels)
        q = F.linear(x, self.q_weight, self.q_bias).reshape(-1, tokens, heads, dim)
        k = F.linear(x, self.k_weight, self.k_bias).reshape(-1, tokens, heads, dim)
        v = x.reshape(-1, tokens, heads, dim).transpose(1, 2)
        attn = torch.softmax(q.transpose(1, 2) @ k.permute(0, 2, 3, 1), dim=-1)
        out = (attn @ v).reshape(n, rows, cols, heads, window[0], window[1], dim)
        # Heads merged and windows put back by one transpose: (N, H', W', heads * d).
        out = out.permute(0, 4, 1, 5, 2, 3, 6).reshape(n, window[0] * rows, window[1] * cols,
                                                       channels)
        return out[:, :height, :width] if padded else out

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_channels_last(x) if self.channels_last else self.forward_nchw(x)

    def forward_nchw(self, x: Tensor) -> Tensor:
        """BatchNorm stages (the input norm folded into ``v``): NCHW in and out."""
        block = self.block
        if not isinstance(block.norm, nn.Identity):
            raise ValueError('the export form needs the deploy form: call switch_to_deploy()')
        y = conv_act(block.v, x) if isinstance(block.v, ConvNormAct) else x
        local = conv_act(block.conv_local, y)
        if isinstance(block.se, SqueezeExcite):
            se = block.se
            gate = se.conv_reduce(F.adaptive_avg_pool2d(local, 1))
            gate = se.conv_expand(activation(se.act1, gate))
            local = local * torch.sigmoid(gate)
        y = local + y if block.has_skip else local
        y = conv_act(block.proj, y)
        return y + x if block.has_skip else y

    def forward_channels_last(self, x: Tensor) -> Tensor:
        """LayerNorm stages: ``(N, H, W, C)`` in and out."""
        block = self.block
        norm = block.norm.norm
        y = F.layer_norm(x, norm.normalized_shape, norm.weight, norm.bias, norm.eps)
        if block.attention:
            y = self.window_attention(y)
        y = pointwise(block.v, y)
        # The depth-wise convolution on an NCHW view; its activation is elementwise, so it
        # runs after the view back.
        local = block.conv_local.conv(y.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        local = activation(block.conv_local.act, local)
        y = local + y if block.has_skip else local
        y = pointwise(block.proj, y)
        return y + x if block.has_skip else y


class GraphEMO(nn.Module):
    """An :class:`EMO` backbone in its deploy form, for export: same inputs and outputs
    (NCHW); the LayerNorm stages run channels-last inside."""

    def __init__(self, emo: EMO, static: bool) -> None:
        super().__init__()
        if not emo.deployed:
            raise ValueError('the export form needs the deploy form: call switch_to_deploy()')
        self.out_indices = emo.out_indices
        self.stem = emo.stage0[0]
        last = max(emo.out_indices)
        self.stages = nn.ModuleList(
            nn.ModuleList(GraphIRMB(block, static) for block in stage
                          if isinstance(block, iRMB))
            for stage in emo.stages[:last + 1])

    def forward(self, x: Tensor) -> Tuple[Tensor, ...]:
        x = self.stem(x)
        outs = []
        channels_last = False
        for i, stage in enumerate(self.stages):
            if stage[0].channels_last and not channels_last:
                x, channels_last = x.permute(0, 2, 3, 1), True
            for block in stage:
                x = block(x)
            if i in self.out_indices:
                outs.append(x.permute(0, 3, 1, 2) if channels_last else x)
        return tuple(outs)


def export_form(model: nn.Module, static: bool = False) -> nn.Module:
    """``model`` with an EMO ``backbone`` (deploy form) replaced by :class:`GraphEMO`, in
    place; returns it. Other backbones are left as they are."""
    if isinstance(getattr(model, 'backbone', None), EMO):
        model.backbone = GraphEMO(model.backbone, static)
    return model
