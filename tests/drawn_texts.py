"""Test helper loaded by a tool subprocess (``custom_imports``): a detection visualiser that
also writes every text it draws (the label of each box) to ``$EMO_MM_DRAWN_TEXTS``, one a line,
so that a test can read which class names a picture shows."""
import os

from mmdet.registry import VISUALIZERS
from mmdet.visualization import DetLocalVisualizer


@VISUALIZERS.register_module()
class TextRecordingDetVisualizer(DetLocalVisualizer):

    def draw_texts(self, texts, *args, **kwargs):
        with open(os.environ['EMO_MM_DRAWN_TEXTS'], 'a') as out:
            for text in [texts] if isinstance(texts, str) else texts:
                out.write(text + '\n')
        return super().draw_texts(texts, *args, **kwargs)
