"""The processes of tests/test_unused_stages.py's DDP check (a module of its own: spawned
processes import their function by module name)."""
import datetime
import json
import os
from pathlib import Path
from typing import Dict, List, Tuple

import torch
import torch.distributed as dist

from emo_mm import EMO
from emo_mm.models.backbones.efficientmod import EfficientMod


def _synthetic_batch(framework: str, num_classes: int, with_masks: bool, size: int,
                     rank: int, images: int = 2) -> dict:
    """``images`` images per process (pooled BatchNorms need 2) with one object / a random
    label map each, as the pipelines pack them."""
    generator = torch.Generator().manual_seed(rank)
    meta = dict(img_shape=(size, size), ori_shape=(size, size), pad_shape=(size, size),
                scale_factor=(1., 1.), flip=False)
    inputs, samples = [], []
    for i in range(images):
        inputs.append(torch.randint(0, 256, (3, size, size), dtype=torch.uint8,
                                    generator=generator))
        if framework == 'mmdet':
            import numpy as np
            from mmdet.structures import DetDataSample
            from mmdet.structures.mask import BitmapMasks
            from mmengine.structures import InstanceData
            box = [size * 0.1, size * 0.2, size * (0.6 + 0.1 * i), size * 0.8]
            gt = InstanceData(bboxes=torch.tensor([box]),
                              labels=torch.tensor([(rank + i) % num_classes]))
            if with_masks:
                mask = np.zeros((1, size, size), np.uint8)
                mask[0, int(box[1]):int(box[3]), int(box[0]):int(box[2])] = 1
                gt.masks = BitmapMasks(mask, size, size)
            sample = DetDataSample(metainfo=meta)
            sample.gt_instances = gt
        else:
            from mmengine.structures import PixelData
            from mmseg.structures import SegDataSample
            sample = SegDataSample(metainfo=meta)
            sample.gt_sem_seg = PixelData(data=torch.randint(0, num_classes, (1, size, size),
                                                             generator=generator))
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


def _build_for_cpu_ddp(config: Path, size: int) -> Tuple[torch.nn.Module, dict]:
    """The config's model without its checkpoint, adapted to CPU processes as
    tools/train.py adapts it (SyncBN -> BN), and a batch for it."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    from emo_mm.engine.cpu_distributed import adapt_to_cpu
    cfg = Config.fromfile(str(config))
    cfg.launcher = 'pytorch'
    adapt_to_cpu(cfg)
    framework = cfg.default_scope
    init_default_scope(framework)
    cfg.model.backbone.init_cfg = None
    if framework == 'mmseg':
        cfg.model.data_preprocessor.size = (size, size)  # no padding to the crop size
        registry = __import__('mmseg.registry', fromlist=['MODELS']).MODELS
        heads = [cfg.model.decode_head, *([cfg.model.auxiliary_head]
                                           if cfg.model.get('auxiliary_head') else [])]
        num_classes = heads[0].num_classes
        with_masks = False
    else:
        registry = __import__('mmdet.registry', fromlist=['MODELS']).MODELS
        head = cfg.model.get('bbox_head') or cfg.model.roi_head.bbox_head
        num_classes = head.num_classes
        with_masks = 'mask_head' in cfg.model.get('roi_head', {})
    model = registry.build(cfg.model)
    batch = _synthetic_batch(framework, num_classes, with_masks, size, dist.get_rank())
    return model, batch


def _ddp_steps(model: torch.nn.Module, step) -> None:
    """Two training steps (an unused parameter is reported at the second) without
    ``find_unused_parameters``."""
    from mmengine.model import MMDistributedDataParallel
    from mmengine.optim import OptimWrapper
    ddp = MMDistributedDataParallel(module=model, find_unused_parameters=False,
                                    broadcast_buffers=False)
    optim = OptimWrapper(torch.optim.SGD(ddp.parameters(), lr=1e-3))
    for _ in range(2):
        step(ddp, optim)


def ddp_worker(rank: int, port: int, jobs: List[Tuple[str, str]], out: str, repo: str) -> None:
    """Runs every job (a config path relative to ``repo``, or a JSON backbone spec), writes
    ``rank{rank}.json`` into ``out``: ``'ok'`` or the error, per job."""
    os.environ.update(CUDA_VISIBLE_DEVICES='', OMP_NUM_THREADS='1')
    torch.set_num_threads(1)
    dist.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{port}', rank=rank,
                            world_size=2, timeout=datetime.timedelta(seconds=300))
    results: Dict[str, str] = {}
    for kind, what in jobs:
        torch.manual_seed(0)
        try:
            if kind == 'config':
                model, batch = _build_for_cpu_ddp(Path(repo, what), size=64)

                def step(ddp, optim, batch=batch):
                    losses = ddp.train_step(batch, optim)
                    assert all(torch.isfinite(v).all() for v in losses.values())
            else:
                name, arch, indices, size = json.loads(what)
                model = {'EMO': EMO, 'EfficientMod': EfficientMod}[name](
                    arch, out_indices=tuple(indices)).train()
                images = torch.randn(2, 3, size, size)

                def step(ddp, optim, images=images):
                    optim.update_params(sum(out.mean() for out in ddp(images)))
            _ddp_steps(model, step)
            results[what] = 'ok'
        except Exception as error:  # reported per job, the other jobs still run
            results[what] = f'{type(error).__name__}: {str(error).splitlines()[0][:300]}'
    Path(out, f'rank{rank}.json').write_text(json.dumps(results))
    dist.destroy_process_group()


