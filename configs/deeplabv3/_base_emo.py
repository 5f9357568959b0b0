# DeepLabv3 with an EMO backbone on ADE20K, 80k iterations: the authors' recipe over the family's
# shared part (_common.py). The variants (configs/deeplabv3/emo_*.py) set the backbone size and
# the head input widths.
_base_ = './_common.py'

model = dict(
    backbone=dict(
        _delete_=True,
        type='EMO',
        window_size=7,
        out_indices=(1, 2, 3, 4),
        norm_cfg=dict(type='SyncBN'),  # eps stays the authors' 1e-6 inside EMO
        init_cfg=dict(type='Pretrained')))

# AdamW instead of SGD; no weight decay on parameters named `norm` (the authors' custom key, as
# in the detection configs: EMO's block norms; the stem's and the heads' BN keep theirs).
optimizer = dict(_delete_=True, type='AdamW', lr=1.2e-4, betas=(0.9, 0.999), weight_decay=0.01)
optim_wrapper = dict(
    optimizer=optimizer, paramwise_cfg=dict(custom_keys={'norm': dict(decay_mult=0.)}))
# Poly decay of power 0.9 down to 0 (the base stops at 1e-4), no warm-up.
param_scheduler = [
    dict(type='PolyLR', eta_min=0.0, power=0.9, begin=0, end=80000, by_epoch=False)
]
