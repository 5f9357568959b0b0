"""What every runtime wrapper (``OnnxDetector``, ``OnnxTwoStageDetector``, ``OnnxSegmentor``)
shares: the exported file opened once, its metadata, and its class names kept.

The frameworks' inferencers assign ``model.dataset_meta`` after building a model: given no
checkpoint (an exported file holds its weights), ``DetInferencer`` assigns COCO's class names
and ``MMSegInferencer`` Cityscapes', then their visualisers draw with the model's. A wrapper
keeps the file's ``classes`` and ``palette`` whatever is assigned: they name the outputs the
graph was trained to give.
"""
from typing import Any, Dict, Optional

from .errors import DeployError
from .metadata import dataset_meta, read_metadata

class RuntimeModelMixin:
    """Mixed into an mmdet / mmseg model class: :meth:`open_exported` in ``__init__``."""

    def open_exported(self, onnx_file: str, what: str, accepts,
                      backend: str = 'onnxruntime') -> Dict[str, Any]:
        """Opens ``onnx_file`` (one session of ``backend``), checks ``accepts(meta)`` (else a
        :class:`DeployError`: the file is not ``what``) and sets ``session``, ``onnx_file``,
        ``onnx_meta`` and the file's ``dataset_meta``; returns the metadata."""
        meta = read_metadata(onnx_file, backend=backend)
        if not accepts(meta):
            raise DeployError(f'{onnx_file!r} holds a {meta["task"]} model ('
                              f'{meta.get("family")}), not {what}')
        self.onnx_file = str(onnx_file)
        self.session = meta.pop('session')
        self.onnx_meta = meta
        self._file_dataset_meta = dataset_meta(meta) or {}
        self._assigned_dataset_meta: Dict[str, Any] = {}
        return meta

    @property
    def dataset_meta(self) -> Optional[dict]:
        """The file's class names and palette, with the other keys assigned to it; a new dict
        on each read (changing it changes nothing: the file decides its classes)."""
        merged = {**self._assigned_dataset_meta, **self._file_dataset_meta}
        return merged or None

    @dataset_meta.setter
    def dataset_meta(self, value: Optional[dict]) -> None:
        # Keeps what the file does not decide (e.g. a palette for a file without one).
        self._assigned_dataset_meta = dict(value or {})
