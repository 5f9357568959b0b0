# Semantic FPN on ADE20K with the EfficientMod paper's recipe (ICLR 2024; the usual one for
# efficient backbones: PVT, PoolFormer), shared by the EMO and EfficientMod backbones here so that
# they compare on equal terms: the family's shared part (_common.py: mmseg's FPN-R50 ADE20K
# config, 4 images per GPU) with another optimiser and schedule. The backbone bases
# (_base_emo.py, _base_efficientmod.py) put in the backbone; the variants its size and widths.
_base_ = './_common.py'

auto_scale_lr = dict(enable=False, base_batch_size=32)  # 8 GPUs x 4 images (the base's 4)

# AdamW instead of SGD (no gradient clipping, every parameter decays).
optim_wrapper = dict(
    optimizer=dict(_delete_=True, type='AdamW', lr=2e-4, betas=(0.9, 0.999), weight_decay=1e-4))
# 40k iterations: a linear warm-up over 1000 iterations from 0.1x, times a cosine decay over all
# 40k to 1e-6x (mmcv 1.x's CosineAnnealing with warm-up, as the authors ran it).
max_iters = 40000
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=1000),
    dict(type='CosineAnnealingLR', T_max=max_iters, eta_min_ratio=1e-6, by_epoch=False, begin=0,
         end=max_iters),
]
train_cfg = dict(max_iters=max_iters, val_interval=4000)
default_hooks = dict(checkpoint=dict(interval=4000))
