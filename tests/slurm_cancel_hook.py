"""Test helper loaded by the tasks of a Slurm training job (``custom_imports``): the job cancels
itself with ``scancel`` right after the checkpoint of a given iteration is on disk, then waits.

The cancel then lands at a known point and is delivered by the cluster's own kill (SIGTERM to
every task of the job, SIGKILL after ``KillWait``), instead of by a test racing a poll of the
work dir against the training.
"""
import os
import subprocess
import time

from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmengine.registry import HOOKS


@HOOKS.register_module()
class CancelJobAfterCheckpointHook(Hook):
    """After iteration ``iteration`` (1-based, as the checkpoint ``iter_<iteration>.pth`` is
    named) rank 0 runs ``scancel $SLURM_JOB_ID``; every rank then sleeps until it is killed."""

    priority = 'LOWEST'  # after the CheckpointHook (VERY_LOW) has written the checkpoint

    def __init__(self, iteration: int) -> None:
        self.iteration = iteration

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if runner.iter + 1 != self.iteration:
            return
        if is_main_process():
            runner.logger.info(f'CancelJobAfterCheckpointHook: scancel after iteration '
                               f'{self.iteration}')
            subprocess.run(['scancel', os.environ['SLURM_JOB_ID']], check=True)
        while True:  # Slurm ends this process; training must not go on
            time.sleep(1)
