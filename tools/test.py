"""Evaluate a checkpoint on the test set of an emo-mm (or any mmdet / mmseg) config.

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out FILE_OR_DIR] [--show]
                         [--show-dir DIR] [--tta] [--cfg-options k=v ...] [--launcher ...]

CHECKPOINT is a ``.pth`` file (or URL), or an ``.onnx`` file from tools/export_onnx.py, which
onnxruntime then runs (``--backend openvino``: OpenVINO). Several processes: tools/dist_test.sh CONFIG CHECKPOINT NPROC [options];
on a Slurm cluster: tools/slurm_test.sh PARTITION JOB_NAME CONFIG CHECKPOINT [options].
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # a checkout runs uninstalled

from emo_mm import cli, config_options  # noqa: E402
from emo_mm.engine import runner  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Test (and evaluate) a detector (mmdet config) '
                                     'or segmentor (mmseg config); the config\'s default_scope '
                                     'decides.')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint file or URL, or an exported .onnx file')
    parser.add_argument('--work-dir', help='where the metrics are saved '
                        '(default: the config\'s work_dir, else work_dirs/<config name>)')
    parser.add_argument('--out', help='detection: dump the predictions to this .pkl file; '
                        'segmentation: write the predicted label maps into this folder')
    parser.add_argument('--show', action='store_true', help='show the predictions in a window')
    parser.add_argument('--show-dir', help='save pictures of the predictions here (detection: '
                        'inside work_dir/<timestamp>/)')
    parser.add_argument('--wait-time', type=float, default=2., help='seconds each --show lasts')
    parser.add_argument('--tta', action='store_true', help='test-time augmentation '
                        '(the config\'s tta_model and tta_pipeline)')
    parser.add_argument('--backend', choices=('onnxruntime', 'openvino'),
                        help='the runtime of an .onnx CHECKPOINT (default onnxruntime; openvino: '
                        '`pip install emo-mm[openvino]`)')
    cli.add_run_arguments(parser, 'test')
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    cli.parse_local_rank(args.local_rank)
    cfg = config_options.load_config(args.config, args.cfg_options, args.launcher,
                                      args.work_dir)
    onnx = args.checkpoint.endswith('.onnx')
    if onnx:
        from emo_mm.deploy import use_onnx_model
        # onnxruntime (or OpenVINO) runs the exported graph
        use_onnx_model(cfg, args.checkpoint, args.backend or 'onnxruntime')
        runner.preflight(cfg, 'test')
    else:
        if args.backend:
            raise config_options.ConfigError(
                f'--backend {args.backend} runs an exported .onnx file, not the checkpoint '
                f'{args.checkpoint}; export it with tools/export_onnx.py')
        runner.preflight(cfg, 'test', checkpoint=args.checkpoint)
        cfg.load_from = args.checkpoint
    if args.show or args.show_dir:
        config_options.enable_visualization(cfg, args.show, args.show_dir, args.wait_time)
    if args.tta:
        config_options.enable_tta(cfg)
    if args.out:
        config_options.add_result_dump(cfg, args.out)
    if not args.preflight:
        runner.build_runner(cfg, 'test').test()


if __name__ == '__main__':
    cli.run_tool(main)
