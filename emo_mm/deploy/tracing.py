"""The one call of ``torch.onnx.export`` of :mod:`emo_mm.deploy`.

The exporter is the TorchScript-based one (``dynamo=False``): it is the one exporter that
works on both supported stacks, torch 2.1 (whose ``torch.onnx.export`` has no ``dynamo``
argument and is TorchScript-based) and torch 2.13 (where the ``torch.export``-based exporter
is the default; the TorchScript one is kept, deprecated). It traces one example and keeps the
sizes named in ``dynamic_axes`` symbolic.

Warnings filtered during the export, by category and message, and only there:

* the exporter's own deprecation notices of torch >= 2.9 (``You are using the legacy
  TorchScript-based ONNX export`` and ``The feature will be removed``), which say that this
  exporter is deprecated: the choice above is deliberate;
* ``TracerWarning``: they name Python-level decisions the trace freezes; those left in the
  graphs are on static values (channel counts, configured limits, asserts) while sizes stay
  symbolic (the tests run every graph at sizes other than the traced one);
* ``Exporting aten::index operator of advanced indexing``: a note that indexing is written as
  several ONNX operators.

Every other warning shows.
"""
import inspect
import warnings
from pathlib import Path
from typing import Dict, Sequence

import torch
from torch import nn

# (category, message regex, module regex) of the warnings the module docstring lists.
FILTERED = (
    (DeprecationWarning, 'You are using the legacy TorchScript-based ONNX export', ''),
    (DeprecationWarning, 'The feature will be removed', r'torch\.onnx'),
    (torch.jit.TracerWarning, '', ''),
    (UserWarning, 'Exporting aten::index operator of advanced indexing', ''),
)


def torchscript_exporter() -> dict:
    """The ``torch.onnx.export`` argument that picks the TorchScript-based exporter:
    ``dynamo=False`` where torch has the choice; nothing on torch 2.1, whose export is
    TorchScript-based and takes no ``dynamo`` argument."""
    return {'dynamo': False} if 'dynamo' in inspect.signature(torch.onnx.export).parameters \
        else {}


def trace_to_onnx(graph: nn.Module, args: tuple, out: str, input_names: Sequence[str],
                  output_names: Sequence[str], dynamic_axes: Dict[str, Dict[int, str]],
                  opset: int) -> None:
    """Traces ``graph`` (eval mode) on ``args`` and writes ``out`` with the TorchScript
    exporter, constants folded; see the module docstring."""
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings(), torch.no_grad():
        for category, message, module in FILTERED:
            warnings.filterwarnings('ignore', message=message, category=category, module=module)
        torch.onnx.export(graph.eval(), args, str(out), input_names=list(input_names),
                          output_names=list(output_names), dynamic_axes=dynamic_axes,
                          opset_version=opset, do_constant_folding=True,
                          **torchscript_exporter())
