# SSDLite-EMOv2-1M on the tiny shapes dataset (`python tools/make_tiny_datasets.py` writes it to
# data/tiny_coco/): the tiny EMO-1M config (data, light augmentation, 4 images per process, CPU
# schedule, seed) with the EMOv2-1M backbone and the EMOv2 recipe's optimiser, for demos and tests.
_base_ = './emo_1m_tiny.py'

model = dict(
    backbone=dict(
        _delete_=True,  # EMO's window and drop path do not apply
        type='EMOv2', arch='1m', window_size=10, out_indices=(3, 4), frozen_stages=-1,
        norm_eval=False, norm_cfg=dict(type='BN'), init_cfg=None),  # from scratch, BN learns
    neck=dict(in_channels=(80, 180), out_channels=(80, 180, 512, 256, 256, 128)),
    bbox_head=dict(in_channels=(80, 180, 512, 256, 256, 128)))

# The EMOv2 recipe's optimiser (_base_emov2.py).
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
# The recipe's shape (warm-up, constant, cosine over the second half) at CPU scale.
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=20),
    dict(type='CosineAnnealingLR', begin=8, T_max=8, end=16, by_epoch=True, eta_min=0),
]
