#!/usr/bin/env python3
"""Parameters and FLOPs of an emo-mm config (mmdet or mmseg), with both FLOP counters.

    python tools/get_flops.py configs/deeplabv3/emo_1m.py              # paper's input size
    python tools/get_flops.py configs/retinanet/emo_5m.py --shape 800 1280
    python tools/get_flops.py configs/ssdlite/emo_1m.py --counter hook

No dataset or checkpoint is needed. The module-hook counter gives the figures the EMO paper
publishes; the jit-trace counter also counts functional matmuls (window attention). See
emo_mm/analysis/complexity.py for what each counts.
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # a checkout runs uninstalled

from mmengine.config import Config, DictAction  # noqa: E402

from emo_mm.analysis.complexity import COUNTERS, model_complexity  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='config file (mmdet or mmseg default_scope)')
    parser.add_argument('--shape', type=int, nargs='+', metavar='SIZE',
                        help='input H W (or one S for S x S); default: the paper\'s size '
                             '(SSDLite 320x320, RetinaNet 800x1333, segmentation 512x512)')
    parser.add_argument('--counter', choices=(*COUNTERS, 'both'), default='both',
                        help='FLOP counter(s) to run (default: both)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, e.g. model.backbone.window_size=10')
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if args.shape is not None and len(args.shape) not in (1, 2):
        sys.exit(f'--shape takes H W or a single S, got {args.shape}')
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    counters = COUNTERS if args.counter == 'both' else (args.counter, )
    print(model_complexity(cfg, shape=args.shape, counters=counters).summary())


if __name__ == '__main__':
    main()
