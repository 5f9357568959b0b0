# Semantic FPN with an EMOv2 backbone on ADE20K, 160k iterations: the authors' logged recipe
# over the family's shared part (_common.py: mmseg's own Semantic FPN ADE20K 160k config,
# evaluation and checkpoints every 16k iterations). The variants set the backbone size,
# checkpoint and the widths.
_base_ = './_common.py'

train_dataloader = dict(batch_size=8, num_workers=8)  # 4 GPUs x 8 images, as logged
val_dataloader = dict(batch_size=1, num_workers=2)
test_dataloader = val_dataloader

model = dict(
    backbone=dict(
        _delete_=True,
        type='EMOv2',
        window_size=10,
        out_indices=(1, 2, 3, 4),
        # Plain BatchNorm, trained on each GPU's 8 images, as the authors ran it.
        norm_cfg=dict(type='BN'),
        init_cfg=dict(type='Pretrained', checkpoint=None)))  # set by each variant

# AdamW; no weight decay on `norm` parameters (`pos_block` names nothing in EMOv2), the
# decode head (`head`: only `decode_head.*` matches) at 10x the learning rate; no clipping.
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1.2e-4, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=dict(custom_keys={
        'pos_block': dict(decay_mult=0.),
        'norm': dict(decay_mult=0.),
        'head': dict(lr_mult=10.),
    }))
# Linear warm-up over 1500 iterations from 1e-6x, constant to 80k, cosine to 0 at 160k.
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(type='CosineAnnealingLR', begin=80000, end=160000, T_max=80000, by_epoch=False,
         eta_min=0),
]
