# Mask R-CNN-EMOv2 (FPN, 1x) on COCO 2017, the authors' logged recipe on mmdet 3.x (the same as
# their RetinaNet's). mmdet's Mask R-CNN-R50 1x config already carries the FPN (start level 0,
# 5 outputs), the heads, the (1333, 800) inputs and bbox + segm evaluation every epoch for 12
# epochs: the backbone, optimiser, clipping, schedule and batch differ. The variants set `arch`,
# checkpoint and channels. (configs/mask_rcnn/_recipe.py is the shared EfficientMod-paper recipe
# of the other backbones; EMOv2's authors trained with their own, this one.)
_base_ = 'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py'

# emo_mm.datasets.checked_loader: an image file that cannot be read is named, by every tool and API.
custom_imports = dict(imports=['emo_mm', 'emo_mm.datasets.checked_loader'],
                      allow_failed_imports=False)
custom_hooks = [dict(type='RNGStateHook')]  # --resume continues exactly

# The one place to change where COCO 2017 lives (annotations/, train2017/, val2017/).
data_root = 'data/coco/'

model = dict(
    backbone=dict(
        _delete_=True,  # none of ResNet's arguments apply
        type='EMOv2',
        window_size=10,
        out_indices=(1, 2, 3, 4),
        frozen_stages=1,  # the stem and stage 1
        norm_eval=True,
        norm_cfg=dict(type='BN'),  # plain BatchNorm as the authors trained (frozen statistics)
        init_cfg=dict(type='Pretrained', checkpoint=None)))  # set by each variant

# 4 GPUs x 4 images, as logged.
train_dataloader = dict(batch_size=4, num_workers=4, dataset=dict(data_root=data_root))
# Test images: a grayscale or BGRA array given to the inference API becomes 3-channel
# (emo_mm.datasets.transforms.ToThreeChannels); otherwise the base's pipeline. The loader keeps
# the name LoadImageFromFile, by which DetInferencer and MMSegInferencer find it; in our scopes
# (mmdet, mmseg) that name is emo_mm's CheckedLoadImageFromFile (names unreadable files).
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ToThreeChannels'),
    dict(type='Resize', scale=(1333, 800), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
val_dataloader = dict(dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val2017.json')
test_evaluator = val_evaluator
auto_scale_lr = dict(base_batch_size=16)

# AdamW, no weight decay on parameters named `norm` (the authors' keys; the other two name
# nothing in EMOv2), gradients clipped to L2 norm 0.1.
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=2e-4, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=dict(custom_keys={
        'absolute_pos_embed': dict(decay_mult=0.),
        'relative_position_bias_table': dict(decay_mult=0.),
        'norm': dict(decay_mult=0.),
    }),
    clip_grad=dict(max_norm=0.1, norm_type=2))
# Linear warm-up over 500 iterations from 1e-5x, constant to epoch 6, cosine to 0 at 12.
max_epochs = 12
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-5, by_epoch=False, begin=0, end=500),
    dict(type='CosineAnnealingLR', begin=6, end=max_epochs, T_max=6, by_epoch=True, eta_min=0),
]
