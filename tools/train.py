"""Train a detector or segmentor from an emo-mm (or any mmdet / mmseg) config.

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp] [--auto-scale-lr]
                          [--cfg-options k=v ...] [--launcher {none,pytorch,slurm,mpi}]

Several processes: tools/dist_train.sh CONFIG NPROC [the options above]; on a Slurm cluster:
tools/slurm_train.sh PARTITION JOB_NAME CONFIG WORK_DIR [the options above]; on GPUs or CPU (gloo).
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # a checkout runs uninstalled

from emo_mm import cli, config_options  # noqa: E402
from emo_mm.engine import runner  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train a detector (mmdet config) or segmentor '
                                     '(mmseg config); the config\'s default_scope decides.')
    parser.add_argument('config', help='config file')
    parser.add_argument('--work-dir', help='where logs and checkpoints go '
                        '(default: the config\'s work_dir, else work_dirs/<config name>)')
    parser.add_argument('--resume', nargs='?', const='auto', metavar='CKPT',
                        help='resume from CKPT, or without CKPT from the latest checkpoint '
                        'in the work dir')
    parser.add_argument('--amp', action='store_true', help='mixed precision (needs a GPU)')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='scale the lr by total batch / auto_scale_lr.base_batch_size')
    cli.add_run_arguments(parser, 'train')
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    cli.parse_local_rank(args.local_rank)
    cfg = config_options.load_config(args.config, args.cfg_options, args.launcher,
                                      args.work_dir)
    config_options.apply_train_options(cfg, args.amp, args.auto_scale_lr, args.resume)
    runner.preflight(cfg, 'train')
    if not args.preflight:
        runner.build_runner(cfg, 'train').train()


if __name__ == '__main__':
    cli.run_tool(main)
