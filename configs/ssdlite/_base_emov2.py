# SSDLite-EMOv2 on COCO 2017 at 320x320, the authors' logged recipe on mmdet 3.x: the EMO recipe
# (_base_emo.py: mmdet's SSDLite-MobileNetV2 config with its neck/head, anchors, SSD
# augmentations at 320x320, RepeatDataset x5 over 120 epochs, evaluation every 5 epochs, 24 images
# per GPU on 8 GPUs) with another backbone, optimiser, clipping and schedule. The authors call
# this input "300", but their configs set input_size = 320 and their FLOPs are the counts at 320.
# The variant files set `arch`, checkpoint and channels.
_base_ = './_base_emo.py'

model = dict(
    backbone=dict(
        type='EMOv2',  # EMO's out_indices (3, 4): strides 16 and 32, no stage 0-2 maps
        window_size=10,
        # Plain BatchNorm as the authors trained (statistics frozen by norm_eval anyway).
        norm_cfg=dict(type='BN')))

train_dataloader = dict(num_workers=12)
val_dataloader = dict(num_workers=2)
test_dataloader = val_dataloader

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
