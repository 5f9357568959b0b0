# DeepLabv3 with an EMOv2 backbone on ADE20K, 80k iterations: the authors' logged recipe over
# the family's shared part (_common.py). The backbone is not dilated (the base is named d8, but
# the head runs on the stride-32 map, as the authors ran it). The variants set the backbone
# size, checkpoint and the head input widths.
_base_ = './_common.py'

train_dataloader = dict(batch_size=8, num_workers=8)  # 4 GPUs x 8 images, as logged
val_dataloader = dict(num_workers=2)
test_dataloader = val_dataloader

model = dict(
    backbone=dict(
        _delete_=True,
        type='EMOv2',
        window_size=10,
        out_indices=(1, 2, 3, 4),
        # Plain BatchNorm, trained on each GPU's 8 images, as the authors ran it (the heads
        # keep the base's SyncBN).
        norm_cfg=dict(type='BN'),
        init_cfg=dict(type='Pretrained', checkpoint=None)))  # set by each variant

# AdamW, no weight decay on parameters named `norm` (the authors' keys; the other two name
# nothing here), gradients clipped to L2 norm 0.1.
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1.2e-4, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=dict(custom_keys={
        'absolute_pos_embed': dict(decay_mult=0.),
        'relative_position_bias_table': dict(decay_mult=0.),
        'norm': dict(decay_mult=0.),
    }),
    clip_grad=dict(max_norm=0.1, norm_type=2))
# Linear warm-up over 500 iterations from 1e-5x, constant to 40k, cosine to 0 at 80k.
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-5, by_epoch=False, begin=0, end=500),
    dict(type='CosineAnnealingLR', begin=40000, end=80000, T_max=40000, by_epoch=False,
         eta_min=0),
]
