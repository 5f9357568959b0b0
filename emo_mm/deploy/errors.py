"""The one exception type of :mod:`emo_mm.deploy`: bad input, named with its fix."""


class DeployError(ValueError):
    """A config, checkpoint or ``.onnx`` file that cannot be exported or run, and why."""
