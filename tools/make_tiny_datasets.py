"""Writes the tiny datasets the demo configs read (deterministic; a few seconds).

    python tools/make_tiny_datasets.py [--root data] [--only {det,seg}]

det: <root>/tiny_coco, boxes and polygon masks (the *_tiny.py configs of ssdlite, retinanet,
     mask_rcnn);
seg: <root>/tiny_ade (the *_tiny.py configs of deeplabv3, sem_fpn).
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # a checkout runs uninstalled

from emo_mm.datasets.tiny_ade import make_tiny_ade  # noqa: E402
from emo_mm.datasets.tiny_coco import make_tiny_coco  # noqa: E402


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
        make_tiny_ade(root / 'tiny_ade')
        print(f'tiny ADE20K: {root / "tiny_ade"}')


if __name__ == '__main__':
    main()
