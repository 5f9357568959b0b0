"""mmdet 3.3's ``SSDHead``, made able to predict.

``BaseDenseHead._predict_by_feat_single`` asks ``getattr(self.loss_cls, 'custom_cls_channels',
False)``, but ``SSDHead`` computes its softmax cross-entropy inline and never sets ``loss_cls``,
so every SSD prediction (validation, ``tools/test.py``, ``inference_detector``,
``DetInferencer``) raises ``AttributeError: 'SSDHead' object has no attribute 'loss_cls'``
(open-mmlab/mmdetection#11063, #11305, #11780).

The fix is a subclass that our SSDLite configs name (``bbox_head=dict(type='FixedSSDHead')``),
not a patch of mmdet: other users of mmdet in the same process are untouched.
"""
from mmdet.models.dense_heads import SSDHead
# mmengine's root registry, as for the backbones: mmdet's registry falls back to it, and so
# does any other scope that is current when a detector is built.
from mmengine.registry import MODELS


@MODELS.register_module()
class FixedSSDHead(SSDHead):
    """``SSDHead`` (same arguments, parameters and losses) whose ``predict`` works.

    ``loss_cls = None`` is the answer the prediction code looks for: "no custom class
    channels", so it takes the softmax branch, which is SSD's (background last).
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if not hasattr(self, 'loss_cls'):
            self.loss_cls = None
