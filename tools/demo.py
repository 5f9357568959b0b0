"""The main job on the embedded default: train, evaluate and look at predictions, on CPU.

    python tools/demo.py [--work-dir work_dirs/demo] [--nproc 2]

Writes the tiny datasets, trains SSDLite-EMO-1M and DeepLabv3-EMO-1M with tools/dist_train.sh,
evaluates them with tools/test.py, runs the mmdet / mmseg inference APIs on the photos in demo/
and on held-out images, plots the training curves and prints where everything is.
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runs from a checkout, uninstalled

from emo_mm import demo  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--work-dir', type=Path, default=demo.REPO / 'work_dirs' / 'demo',
                        help='where checkpoints, logs, pictures and curves go')
    parser.add_argument('--nproc', type=int, default=2, help='training processes (default 2)')
    args = parser.parse_args()
    demo.main(args.work_dir.resolve(), args.nproc)


if __name__ == '__main__':
    main()
