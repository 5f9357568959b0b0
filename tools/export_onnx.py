"""Export a trained detector (mmdet config) or segmentor (mmseg config) to one ``.onnx`` file.

    python tools/export_onnx.py CONFIG CHECKPOINT --out FILE.onnx [--dynamic] [--shape H W]
        [--opset N]

Detection graphs end in boxes, scores and labels after non-maximum suppression; segmentation
graphs in per-pixel logits and the class map at the input size. Input: the config's
preprocessed batch (float32 NCHW, in its data_preprocessor's channel order, normalised by its
mean/std). A config whose test
pipeline resizes every image to one size (SSDLite: 320x320) gets a static graph (batch 1, that
size; no shape arithmetic, the fastest); the others (RetinaNet, segmentors: aspect ratio kept)
a dynamic one (any batch, height, width); ``--dynamic`` makes any config's graph dynamic.
Evaluate the file with ``python tools/test.py CONFIG FILE.onnx``.
"""
import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runs from a checkout, uninstalled

from emo_mm import cli  # noqa: E402
from emo_mm.deploy import export_onnx  # noqa: E402
from emo_mm.deploy.export import DEFAULT_OPSET  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Export an mmdet / mmseg model to ONNX '
                                     '(TorchScript exporter, BatchNorm folded, NMS in the graph)')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint file (.pth) of that config')
    parser.add_argument('--out', required=True, help='the .onnx file to write')
    parser.add_argument('--dynamic', action='store_true',
                        help='a graph for any batch, height and width (the default only for '
                        'configs whose test pipeline keeps the aspect ratio); without it, a '
                        'config that resizes every image to one size gets a static graph for '
                        'that size and batch 1')
    parser.add_argument('--shape', type=int, nargs=2, metavar=('H', 'W'),
                        help='size of the example traced by a dynamic export (default: '
                        '320x320 for detection, the crop size or 512x512 for segmentation)')
    parser.add_argument('--opset', type=int, default=DEFAULT_OPSET,
                        help=f'ONNX opset, >= 14 (default {DEFAULT_OPSET})')
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    start = time.perf_counter()
    meta = export_onnx(args.config, args.checkpoint, args.out, shape=args.shape,
                       opset=args.opset, dynamic=True if args.dynamic else None)
    size = Path(args.out).stat().st_size / 2**20
    height, width = meta['shape']
    kind = (f'dynamic, traced at {height}x{width}' if meta['input']['dynamic'] else
            f'static: batch 1, {height}x{width} only')
    print(f'wrote {args.out} ({size:.1f} MiB, {meta["task"]}, {meta["family"]}, opset '
          f'{meta["opset"]}, {kind}) in {time.perf_counter() - start:.1f} s\n'
          f'inputs: {", ".join(meta["inputs"])}; "input": {meta["input"]["convention"]}; '
          f'mean {meta["input"]["mean"]}, std {meta["input"]["std"]}\n'
          f'outputs: {", ".join(meta["outputs"])}')


if __name__ == '__main__':
    cli.run_tool(main)  # a user error: one `error: ...` line, exit status 1
