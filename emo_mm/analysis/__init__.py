"""Model and run analysis: parameter and FLOP counts of the configs, reading work dirs."""
from .complexity import Complexity, build_model, default_input_shape, model_complexity
from .work_dir import latest_checkpoint, read_scalars, read_test_metrics

__all__ = ['Complexity', 'build_model', 'default_input_shape', 'model_complexity',
           'latest_checkpoint', 'read_scalars', 'read_test_metrics']
