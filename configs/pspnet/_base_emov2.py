# PSPNet with an EMOv2 backbone on ADE20K, 80k iterations: the authors' logged recipe as changes
# to mmseg's own PSPNet ADE20K 80k config. The backbone is not dilated (the base is named d8,
# but the head runs on the stride-32 map, as the authors ran it). The variants set the backbone
# size, checkpoint and the head input widths.
_base_ = ['mmseg::pspnet/pspnet_r50-d8_4xb4-80k_ade20k-512x512.py']
# emo_mm.datasets.checked_loader: an image file that cannot be read is named, by every tool and API.
custom_imports = dict(imports=['emo_mm', 'emo_mm.datasets.checked_loader'],
                      allow_failed_imports=False)
# A batch of one image cannot train the pooled BatchNorm branch of the decode head: say so clearly.
# RNGStateHook: checkpoints carry the random generators' states, so a resumed run (any launcher)
# continues the interrupted one exactly.
custom_hooks = [dict(type='PooledBatchNormCheckHook'), dict(type='RNGStateHook')]

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
val_dataloader = dict(num_workers=2, dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader

model = dict(
    pretrained=None,  # the base's ResNet checkpoint; EMOv2 loads its own through init_cfg
    backbone=dict(
        _delete_=True,
        type='EMOv2',
        window_size=10,
        out_indices=(1, 2, 3, 4),
        # Plain BatchNorm, trained on each GPU's 8 images, as the authors ran it (the heads
        # keep the base's SyncBN).
        norm_cfg=dict(type='BN'),
        init_cfg=dict(type='Pretrained', checkpoint=None)),  # set by each variant
    decode_head=dict(in_index=3, channels=256),  # stage4; PSP pool scales 1/2/3/6 from the base
    auxiliary_head=dict(in_index=2))  # stage3; FCN with 256 channels, one conv, weight 0.4

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
