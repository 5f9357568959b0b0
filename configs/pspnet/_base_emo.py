# PSPNet with an EMO backbone on ADE20K, 80k iterations: the authors' recipe as changes to
# mmseg's own PSPNet ADE20K 80k config. The variants (configs/pspnet/emo_*.py) set the
# backbone size and the head input widths. Apart from the mmseg base and this header it is
# configs/deeplabv3/_base_emo.py (mmengine forbids two bases setting one key, so the shared part
# cannot be a third base); tests/test_segmentation.py checks that the two stay in step.
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
# them, so the dataloaders take it again here.
data_root = 'data/ade/ADEChallengeData2016'
train_dataloader = dict(dataset=dict(data_root=data_root))
val_dataloader = dict(dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader

model = dict(
    pretrained=None,  # the base's ResNet checkpoint; EMO loads its own through init_cfg
    backbone=dict(
        _delete_=True,
        type='EMO',
        window_size=7,
        out_indices=(1, 2, 3, 4),
        norm_cfg=dict(type='SyncBN'),  # eps stays the authors' 1e-6 inside EMO
        init_cfg=dict(type='Pretrained')),
    decode_head=dict(in_index=3, channels=256),  # stage4; PSP pool scales 1/2/3/6 from the base
    auxiliary_head=dict(in_index=2))  # stage3; FCN with 256 channels, one conv, weight 0.4

# AdamW instead of SGD; no weight decay on parameters named `norm` (the authors' custom key, as
# in the detection configs: EMO's block norms; the stem's and the heads' BN keep theirs).
optimizer = dict(_delete_=True, type='AdamW', lr=1.2e-4, betas=(0.9, 0.999), weight_decay=0.01)
optim_wrapper = dict(
    optimizer=optimizer, paramwise_cfg=dict(custom_keys={'norm': dict(decay_mult=0.)}))
# Poly decay of power 0.9 down to 0 (the base stops at 1e-4), no warm-up.
param_scheduler = [
    dict(type='PolyLR', eta_min=0.0, power=0.9, begin=0, end=80000, by_epoch=False)
]
