"""Which device each process of a run computes on, checked before the run starts.

A machine's processes (``LOCAL_WORLD_SIZE``: set by ``torch.distributed.run`` in each process,
and by ``tools/dist_train.sh`` / ``tools/dist_test.sh`` for their one-process check) each take
one GPU of their own when torch sees GPUs: more processes than GPUs would put two ranks on one
device, so it is refused before anything starts. Without GPUs (or with
``CUDA_VISIBLE_DEVICES=`` to leave them unused on purpose) every process computes on the CPU.
"""
import os

import torch

from ..config_options import ConfigError


def processes_per_machine() -> int:
    """``LOCAL_WORLD_SIZE`` (1 when unset)."""
    return int(os.environ.get('LOCAL_WORLD_SIZE') or 1)


def check_one_gpu_per_process() -> None:
    """Refuses more processes per machine than visible GPUs, when torch sees any."""
    if not torch.cuda.is_available():
        return
    processes, gpus = processes_per_machine(), torch.cuda.device_count()
    if processes > gpus:
        raise ConfigError(
            f'{processes} processes per machine but {gpus} visible GPU'
            f'{"s" if gpus != 1 else ""}: each process needs a GPU of its own (two ranks on one '
            f'GPU would fail or mis-train). Start at most {gpus} (e.g. tools/dist_train.sh '
            f'CONFIG {gpus}), or run on the CPU on purpose with CUDA_VISIBLE_DEVICES= before the '
            f'command')


def describe_device(distributed: bool) -> str:
    """One line: where this process computes, e.g. ``'on CPU, 2 threads'`` or
    ``'on cuda:1 (NVIDIA H100), one GPU per process'``."""
    if torch.cuda.is_available():
        index = torch.cuda.current_device()
        return (f'on cuda:{index} ({torch.cuda.get_device_name(index)})'
                + (', one GPU per process' if distributed else ''))
    return f'on CPU, {torch.get_num_threads()} threads' + (' each' if distributed else '')
