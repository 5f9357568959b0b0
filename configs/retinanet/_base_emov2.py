# RetinaNet-EMOv2 (FPN, 1x) on COCO 2017, the authors' logged recipe on mmdet 3.x: the EMO recipe
# (_base_emo.py: mmdet's RetinaNet-R50 1x config with its FPN, RetinaHead, anchors, test
# settings, (1333, 800) inputs and evaluation every epoch for 12 epochs) with another backbone,
# optimiser, clipping, schedule and batch. mmdet's base also carries the test-time augmentation
# settings (its retinanet_tta.py): the authors' configs name that base but their repository
# lacks it; their logs show mmdet's. The variants set `arch`, checkpoint and channels.
_base_ = './_base_emo.py'

model = dict(
    backbone=dict(
        type='EMOv2',  # EMO's stages 1-4, stem and stage 1 frozen, statistics frozen
        window_size=10,
        norm_cfg=dict(type='BN')))  # plain BatchNorm as the authors trained

auto_scale_lr = dict(base_batch_size=16)  # 4 GPUs x 4 images, as logged

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
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-5, by_epoch=False, begin=0, end=500),
    dict(type='CosineAnnealingLR', begin=6, end=12, T_max=6, by_epoch=True, eta_min=0),
]
