"""What the one export function (:func:`emo_mm.deploy.export.export_model`) asks of a graph.

Every graph (:class:`~emo_mm.deploy.graphs.DetectionGraph`,
:class:`~emo_mm.deploy.two_stage.TwoStageGraph`,
:class:`~emo_mm.deploy.graphs.SegmentationGraph`) says its inputs, its outputs, which of their
axes a dynamic graph leaves free, an example to trace, the defaults of its optional inputs and
the metadata it adds to what every file records; the exporter has no case of its own for any
family. ``static``: the graph is traced for batch 1 at one size (no free axes).
"""
from typing import Any, Dict, Tuple

import torch
from torch import nn

from .metadata import IMG_SHAPE_CONVENTION

Shape = Tuple[int, int]
Axes = Dict[str, Dict[int, str]]
# img_shape's default in a dynamic graph: cut to the input's size, every image fills it.
NOT_FED = 2**31 - 1


class ExportableGraph(nn.Module):
    """Base of the exported graphs; see the module docstring."""

    task: str = ''
    input_names: Tuple[str, ...] = ('input', )
    # The lowest ONNX opset the graph's operators need, and why.
    min_opset: int = 14
    opset_reason: str = 'scaled_dot_product_attention (EMO\'s attention) needs opset >= 14 ' \
                        'with the TorchScript exporter'
    static: bool = False

    @property
    def output_names(self) -> Tuple[str, ...]:
        raise NotImplementedError

    def default_shape(self, cfg: Any) -> Shape:
        """``(H, W)`` traced when none is given."""
        return (320, 320)

    def example_inputs(self, shape: Shape) -> tuple:
        """The arguments traced: a seeded ``(1, 3, H, W)`` batch (and what else it takes)."""
        return (torch.randn(1, 3, *shape, generator=torch.Generator().manual_seed(0)), )

    def dynamic_axes(self) -> Axes:
        """The free axes of each input and output (the exporter's ``dynamic_axes``)."""
        return {'input': {0: 'batch', 2: 'height', 3: 'width'}} if not self.static else {}

    def input_defaults(self, shape: Shape) -> Dict[str, Any]:
        """``{input name: value}`` of the optional inputs (stored as initializers)."""
        return {}

    def convention(self) -> str:
        """What the graph adds to the input convention in words (``''``: nothing)."""
        return ''

    def metadata(self) -> Dict[str, Any]:
        """The keys this graph adds to every file's metadata."""
        return {}


class DetectionOutputs:
    """What every detection graph shares: inputs ``input`` and ``img_shape`` (optional),
    outputs grouped by detection (``detections``: their number, free in every graph)."""

    input_names = ('input', 'img_shape')
    box_outputs = ('boxes', 'scores', 'labels', 'batch_index')

    def example_inputs(self, shape: Shape) -> tuple:
        example = torch.randn(1, 3, *shape, generator=torch.Generator().manual_seed(0))
        return example, torch.tensor([list(shape)], dtype=torch.int64)

    def dynamic_axes(self) -> Axes:
        axes: Axes = {name: {0: 'detections'} for name in self.output_names}
        if not self.static:
            axes.update(input={0: 'batch', 2: 'height', 3: 'width'}, img_shape={0: 'batch'})
        return axes

    def input_defaults(self, shape: Shape) -> Dict[str, Any]:
        # Not fed: every image fills the input (a static graph's one size; in a dynamic one
        # the largest int32, cut to the input's size).
        return {'img_shape': [list(shape)] if self.static else [[NOT_FED] * 2]}

    def convention(self) -> str:
        return '; second input ' + IMG_SHAPE_CONVENTION
