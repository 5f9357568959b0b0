# SSDLite-EMOv2 on COCO 2017 at 320x320, the authors' logged recipe on mmdet 3.x. mmdet's
# SSDLite-MobileNetV2 config already carries the SSDLite neck/head, anchors, test settings,
# the SSD augmentations at 320x320, RepeatDataset x5 over 120 epochs, evaluation every 5 epochs
# and 24 images per GPU (8 GPUs: 192): the backbone, optimiser, clipping and schedule differ.
# The authors call this input "300", but their configs set input_size = 320 and their FLOPs are
# the counts at 320. The variant files set `arch`, checkpoint and channels.
_base_ = 'mmdet::ssd/ssdlite_mobilenetv2-scratch_8xb24-600e_coco.py'

# emo_mm.datasets.checked_loader: an image file that cannot be read is named, by every tool and API.
# emo_mm.models.dense_heads: FixedSSDHead, mmdet's SSDHead with a predict that works (mmdet 3.3).
custom_imports = dict(
    imports=['emo_mm', 'emo_mm.datasets.checked_loader', 'emo_mm.models.dense_heads'],
    allow_failed_imports=False)

# The one place to change where COCO 2017 lives (annotations/, train2017/, val2017/).
data_root = 'data/coco/'

model = dict(
    backbone=dict(
        _delete_=True,  # none of MobileNetV2's arguments (nor its init) apply
        type='EMOv2',
        window_size=10,
        out_indices=(3, 4),  # strides 16 and 32; stage 0-2 maps are not returned
        frozen_stages=-1,
        norm_eval=True,
        # Plain BatchNorm as the authors trained (statistics frozen by norm_eval anyway).
        norm_cfg=dict(type='BN'),
        init_cfg=dict(type='Pretrained', checkpoint=None)),  # set by each variant
    bbox_head=dict(type='FixedSSDHead'))

# The base's hooks, and RNGStateHook: checkpoints carry the random generators' states, so a
# resumed run (any launcher) continues the interrupted one exactly. A list replaces the base's.
custom_hooks = [
    dict(type='NumClassCheckHook'),
    dict(type='CheckInvalidLossHook', interval=50, priority='VERY_LOW'),
    dict(type='RNGStateHook'),
]

train_dataloader = dict(num_workers=12, dataset=dict(dataset=dict(data_root=data_root)))
# Test images: a grayscale or BGRA array given to the inference API becomes 3-channel
# (emo_mm.datasets.transforms.ToThreeChannels); otherwise the base's pipeline. The loader keeps
# the name LoadImageFromFile, by which DetInferencer and MMSegInferencer find it; in our scopes
# (mmdet, mmseg) that name is emo_mm's CheckedLoadImageFromFile (names unreadable files).
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ToThreeChannels'),
    dict(type='Resize', scale=(320, 320), keep_ratio=False),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
val_dataloader = dict(num_workers=2, dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val2017.json')
test_evaluator = val_evaluator

# AdamW at 0.0002 x 6 x 2 = 2.4e-3 for 192 images, no weight decay on parameters named `norm`
# (the authors' keys; the other two name nothing in EMOv2), gradients clipped to L2 norm 0.1.
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=2.4e-3, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=dict(custom_keys={
        'absolute_pos_embed': dict(decay_mult=0.),
        'relative_position_bias_table': dict(decay_mult=0.),
        'norm': dict(decay_mult=0.),
    }),
    clip_grad=dict(max_norm=0.1, norm_type=2))
# Linear warm-up over 500 iterations from 1e-5x, constant to epoch 60, cosine to 0 at 120.
max_epochs = 120
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-5, by_epoch=False, begin=0, end=500),
    dict(type='CosineAnnealingLR', begin=60, end=max_epochs, T_max=60, by_epoch=True, eta_min=0),
]
# The authors saved a checkpoint every 5 epochs, with each evaluation.
default_hooks = dict(checkpoint=dict(interval=5))
