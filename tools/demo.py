"""Main job (for now): build every EMO variant, run it on an image, print shapes and counts."""
import time

import torch

from emo_mm import EMO


def main() -> None:
    image = torch.randn(1, 3, 320, 320)
    print(f'{"arch":>4} {"params":>10}  output shapes (strides 4-32)          ms')
    for arch in EMO.arch_zoo:
        model = EMO(arch, out_indices=(1, 2, 3, 4)).eval()
        with torch.no_grad():
            start = time.perf_counter()
            outs = model(image)
            elapsed = (time.perf_counter() - start) * 1e3
        params = sum(p.numel() for p in model.parameters())
        shapes = ' '.join('x'.join(map(str, o.shape[1:])) for o in outs)
        print(f'{arch:>4} {params:>10,}  {shapes:<38} {elapsed:.0f}')


if __name__ == '__main__':
    main()
