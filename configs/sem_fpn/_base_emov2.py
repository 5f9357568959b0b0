# Semantic FPN with an EMOv2 backbone on ADE20K, 160k iterations: the authors' logged recipe as
# changes to mmseg's own Semantic FPN ADE20K 160k config (evaluation and checkpoints every 16k
# iterations, from the base). The variants set the backbone size, checkpoint and the widths.
_base_ = 'mmseg::sem_fpn/fpn_r50_4xb4-160k_ade20k-512x512.py'
# emo_mm.datasets.checked_loader: an image file that cannot be read is named, by every tool and API.
custom_imports = dict(imports=['emo_mm', 'emo_mm.datasets.checked_loader'],
                      allow_failed_imports=False)
custom_hooks = [dict(type='RNGStateHook')]  # --resume continues exactly

# Test images: a grayscale or BGRA array given to the inference API becomes 3-channel
# (emo_mm.datasets.transforms.ToThreeChannels); otherwise the base's pipeline. The loader keeps
# the name LoadImageFromFile, by which DetInferencer and MMSegInferencer find it; in our scopes
# (mmdet, mmseg) that name is emo_mm's CheckedLoadImageFromFile (names unreadable files).
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ToThreeChannels'),
    dict(type='Resize', scale=(2048, 512), keep_ratio=True),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs'),
]

# The dataset root, in one place: mmengine resolves base variables before a child can change
# them, so the dataloaders take it again here. 4 GPUs x 8 images, as logged.
data_root = 'data/ade/ADEChallengeData2016'
train_dataloader = dict(batch_size=8, num_workers=8, dataset=dict(data_root=data_root))
val_dataloader = dict(batch_size=1, num_workers=2,
                      dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader

model = dict(
    pretrained=None,  # the base's checkpoint; EMOv2 loads its own through init_cfg
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
