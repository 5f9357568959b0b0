# RetinaNet-EMO (FPN, 1x) on COCO 2017, the authors' recipe (EMO, ICCV 2023) on mmdet 3.x.
# mmdet's RetinaNet-R50 1x config already carries the FPN (start_level 1, extra convs on input,
# 5 levels, 256 channels), the standard RetinaHead, anchors, test settings, (1333, 800) inputs
# and evaluation every epoch for 12 epochs: the backbone, optimiser, schedule and batch differ.
# The variant files set `arch`, window and channels.
_base_ = 'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py'

# emo_mm.datasets.checked_loader: an image file that cannot be read is named, by every tool and API.
custom_imports = dict(imports=['emo_mm', 'emo_mm.datasets.checked_loader'],
                      allow_failed_imports=False)

# The one place to change where COCO 2017 lives (annotations/, train2017/, val2017/).
data_root = 'data/coco/'

model = dict(
    backbone=dict(
        _delete_=True,  # none of ResNet's arguments apply
        type='EMO',
        out_indices=(1, 2, 3, 4),
        frozen_stages=1,
        norm_eval=True,
        norm_cfg=dict(type='SyncBN'),
        init_cfg=dict(type='Pretrained', checkpoint=None)))  # set by each variant

# Checkpoints carry the random generators' states: a resumed run (any launcher) continues the
# interrupted one exactly.
custom_hooks = [dict(type='RNGStateHook')]

# 8 GPUs x 4 images.
train_dataloader = dict(batch_size=4, num_workers=4, dataset=dict(data_root=data_root))
# Test images: a grayscale or BGRA array given to the inference API becomes 3-channel
# (emo_mm.datasets.transforms.ToThreeChannels); otherwise the base's pipeline. The loader keeps
# the name LoadImageFromFile, by which DetInferencer and MMSegInferencer find it; in our scopes
# (mmdet, mmseg) that name is emo_mm's CheckedLoadImageFromFile (names unreadable files).
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ToThreeChannels'),
    dict(type='Resize', scale=(1333, 800), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
val_dataloader = dict(dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val2017.json')
test_evaluator = val_evaluator
auto_scale_lr = dict(base_batch_size=32)

# AdamW instead of SGD; no weight decay on parameters named `norm` (the authors' custom key;
# their other two keys, absolute_pos_embed and relative_position_bias_table, name nothing in EMO).
optim_wrapper = dict(
    optimizer=dict(_delete_=True, type='AdamW', lr=2e-4, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=dict(custom_keys={'norm': dict(decay_mult=0.)}))

# Linear warm-up over 500 iterations from 0.001x, then cosine to 0 over the 12 epochs
# (instead of the steps at epochs 8 and 11).
max_epochs = 12
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=500),
    dict(type='CosineAnnealingLR', begin=0, T_max=max_epochs, end=max_epochs, by_epoch=True,
         eta_min=0),
]
