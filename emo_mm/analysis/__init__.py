"""Model analysis: parameter and FLOP counts of emo-mm's detection and segmentation configs."""
from .complexity import Complexity, build_model, default_input_shape, model_complexity

__all__ = ['Complexity', 'build_model', 'default_input_shape', 'model_complexity']
