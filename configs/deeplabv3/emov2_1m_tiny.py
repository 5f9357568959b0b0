# DeepLabv3-EMOv2-1M on the tiny ADE20K-format dataset (`python tools/make_tiny_datasets.py`
# writes it to data/tiny_ade/): the real config with small images and a CPU-sized schedule,
# for demos and tests.
_base_ = './emov2_1m.py'

data_root = 'data/tiny_ade'
# The classes present, named as in ADE20K (emo_mm.datasets.tiny_ade.CLASSES): mmseg maps their
# ADE20K ids in the label maps onto 0..3.
metainfo = dict(classes=('wall', 'grass', 'car', 'water'))
crop_size = (192, 192)  # the images are 192 x 256

model = dict(
    data_preprocessor=dict(size=crop_size),
    # init_cfg=None: no ImageNet checkpoint, since the demo runs offline (the checkpoint is a
    # download); the model learns the tiny dataset from scratch.
    backbone=dict(init_cfg=None),
    decode_head=dict(num_classes=len(metainfo['classes'])),
    auxiliary_head=dict(num_classes=len(metainfo['classes'])))

# ADE20K's augmentation at the images' own scale, without the photometric distortion.
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='RandomResize', scale=(256, 192), ratio_range=(0.75, 1.5), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ToThreeChannels'),
    dict(type='Resize', scale=(256, 192), keep_ratio=True),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(
    batch_size=4,  # per process, as the EMO tiny config
    num_workers=2,
    dataset=dict(data_root=data_root, metainfo=metainfo, pipeline=train_pipeline))
val_dataloader = dict(
    num_workers=2,
    dataset=dict(data_root=data_root, metainfo=metainfo, pipeline=test_pipeline))
test_dataloader = val_dataloader

# From scratch on a tiny set: 8x the recipe's learning rate, over a short poly schedule.
optim_wrapper = dict(optimizer=dict(lr=1e-3))
max_iters = 200
# Frequent held-out evaluations (4 small batches each): the demo plots the learning curve.
train_cfg = dict(max_iters=max_iters, val_interval=20)
param_scheduler = [
    dict(type='PolyLR', eta_min=0.0, power=0.9, begin=0, end=max_iters, by_epoch=False)
]
default_hooks = dict(logger=dict(interval=10), checkpoint=dict(interval=100))

# A fixed seed: the demo, and the tests that prove it learns, are reproducible runs.
randomness = dict(seed=0)
