"""Test helper loaded by a training subprocess (``custom_imports``): an interruption at a known
point. With ``EMO_MM_TEST_CRASH_AFTER_ITER=k`` set, the process kills itself with SIGKILL (no
clean-up, as a crash or the OOM killer would) right after iteration ``k``'s checkpoint is on
disk; without the variable it does nothing, so one config serves the interrupted, the resumed
and the uninterrupted run.
"""
import os
import signal

from mmengine.hooks import Hook
from mmengine.registry import HOOKS

VARIABLE = 'EMO_MM_TEST_CRASH_AFTER_ITER'


@HOOKS.register_module()
class CrashAfterCheckpointHook(Hook):
    # After CheckpointHook (VERY_LOW), which saves iteration k's checkpoint in the same call.
    priority = 'LOWEST'

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        target = os.environ.get(VARIABLE)
        if target and runner.iter + 1 == int(target):
            os.kill(os.getpid(), signal.SIGKILL)
