# Mask R-CNN-EMO-1M on the tiny shapes dataset (`python tools/make_tiny_datasets.py` writes it to
# data/tiny_coco/, with a polygon per object): the real config with 256-pixel inputs, a
# CPU-sized schedule and CPU-sized heads (64-channel FPN, RPN, RoI features and mask head,
# 256-wide box head FCs: the 256-channel mask head alone took ~3/4 of a training step, and a
# few shapes need no more; the same layers, so the same inference and export paths).
_base_ = './emo_1m.py'

data_root = 'data/tiny_coco/'
metainfo = dict(classes=('circle', 'square', 'triangle'),  # emo_mm.datasets.tiny_coco.CLASSES
                palette=[(220, 40, 40), (30, 80, 220), (60, 200, 30)])

model = dict(
    # init_cfg=None: no ImageNet checkpoint, since the demo runs offline (the checkpoint is a
    # download) and learns the shapes from scratch; so nothing is frozen and BN learns.
    backbone=dict(init_cfg=None, frozen_stages=-1, norm_eval=False),
    neck=dict(out_channels=64),
    rpn_head=dict(in_channels=64, feat_channels=64),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=64),
        bbox_head=dict(in_channels=64, fc_out_channels=256,
                       num_classes=len(metainfo['classes'])),
        mask_roi_extractor=dict(out_channels=64),
        mask_head=dict(in_channels=64, conv_out_channels=64,
                       num_classes=len(metainfo['classes']))),
    # At most 3 objects an image: far fewer proposals and sampled RoIs than COCO's 1000 / 512
    # (the mask head runs on every positive RoI).
    train_cfg=dict(rpn_proposal=dict(nms_pre=400, max_per_img=200),
                   rcnn=dict(sampler=dict(num=64))),
    test_cfg=dict(rpn=dict(nms_pre=200, max_per_img=100), rcnn=dict(max_per_img=20)))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='Resize', scale=(256, 256), keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ToThreeChannels'),
    dict(type='Resize', scale=(256, 256), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
train_dataloader = dict(
    num_workers=2,
    dataset=dict(data_root=data_root, metainfo=metainfo, pipeline=train_pipeline))
val_dataloader = dict(batch_size=4, num_workers=2,
                      dataset=dict(data_root=data_root, metainfo=metainfo, pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val2017.json')
test_evaluator = val_evaluator

# From scratch on 64 images: a short warm-up and the recipe's steps at 2/3 and 11/12 of the run.
max_epochs = 6
train_cfg = dict(max_epochs=max_epochs, val_interval=3)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=20),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[4, 5],
         gamma=0.1),
]
default_hooks = dict(logger=dict(interval=10), checkpoint=dict(interval=3))
randomness = dict(seed=0)
