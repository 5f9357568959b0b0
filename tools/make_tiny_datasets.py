"""Writes the tiny datasets the demo configs read (deterministic; a few seconds).

    python tools/make_tiny_datasets.py [--root data] [--only {det,seg}]

det: <root>/tiny_coco (configs/*/emo_*_tiny.py of ssdlite and retinanet);
seg: <root>/tiny_ade, when emo_mm.datasets.tiny_ade is present.
"""
import argparse
import importlib.util
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # a checkout runs uninstalled

from emo_mm.datasets.tiny_coco import make_tiny_coco  # noqa: E402

TINY_ADE_MODULE = 'emo_mm.datasets.tiny_ade'


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--root', default='data', help='parent folder (default: data)')
    parser.add_argument('--only', choices=('det', 'seg'), help='make one dataset only')
    args = parser.parse_args()
    root = Path(args.root)
    if args.only != 'seg':
        make_tiny_coco(root / 'tiny_coco')
        print(f'tiny COCO: {root / "tiny_coco"}')
    if args.only != 'det':
        # The segmentation dataset is its own module; made here once it exists.
        if importlib.util.find_spec(TINY_ADE_MODULE) is None:
            if args.only == 'seg':
                sys.exit(f'{TINY_ADE_MODULE} is not available')
        else:
            from emo_mm.datasets.tiny_ade import make_tiny_ade
            make_tiny_ade(root / 'tiny_ade')
            print(f'tiny ADE20K: {root / "tiny_ade"}')


if __name__ == '__main__':
    main()
