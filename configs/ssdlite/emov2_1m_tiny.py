# SSDLite-EMOv2-1M on the tiny shapes dataset (`python tools/make_tiny_datasets.py` writes it to
# data/tiny_coco/): the real config with a CPU-sized schedule, for demos and tests.
_base_ = './emov2_1m.py'

data_root = 'data/tiny_coco/'
metainfo = dict(classes=('circle', 'square', 'triangle'),  # emo_mm.datasets.tiny_coco.CLASSES
                palette=[(220, 40, 40), (30, 80, 220), (60, 200, 30)])

model = dict(
    # init_cfg=None: no ImageNet checkpoint, since the demo runs offline (the checkpoint is a
    # download) and learns the shapes from scratch; so BN learns its statistics too.
    backbone=dict(init_cfg=None, norm_eval=False),
    bbox_head=dict(num_classes=len(metainfo['classes'])))

# Light augmentation: flips only (the SSD crop/expand/colour jitter slows a tiny run down).
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=(320, 320), keep_ratio=False),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
# 4 images per process, as the EMO tiny config.
train_dataloader = dict(
    batch_size=4, num_workers=2,
    dataset=dict(times=2, dataset=dict(data_root=data_root, metainfo=metainfo,
                                       pipeline=train_pipeline)))
val_dataloader = dict(batch_size=8, num_workers=2,
                      dataset=dict(data_root=data_root, metainfo=metainfo))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val2017.json')
test_evaluator = val_evaluator

max_epochs = 16
train_cfg = dict(max_epochs=max_epochs, val_interval=2)
# The recipe's shape (warm-up, constant, cosine over the second half) at CPU scale.
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=20),
    dict(type='CosineAnnealingLR', begin=max_epochs // 2, T_max=max_epochs // 2, end=max_epochs,
         by_epoch=True, eta_min=0),
]
default_hooks = dict(logger=dict(interval=8), checkpoint=dict(interval=4))

# A fixed seed: the demo, and the tests that prove it learns, are reproducible runs.
randomness = dict(seed=0)
