# Semantic FPN on ADE20K with the EfficientMod paper's recipe (ICLR 2024; the usual one for
# efficient backbones: PVT, PoolFormer), shared by every backbone here so that they compare on
# equal terms. mmseg's FPN-R50 ADE20K config already carries the FPN (256 channels, 4 levels),
# the FPNHead (128 channels, dropout 0.1, 150 classes), 512x512 crops, 4 images per GPU and the
# (2048, 512) test resize: the optimiser and the schedule differ. The backbone bases
# (_base_emo.py, _base_efficientmod.py) put in the backbone; the variants its size and widths.
# (The official configs also round the test size to multiples of 32, mmseg 0.x's AlignResize,
# which mmseg 1.x lacks; the FPN takes any size.)
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
# them, so the dataloaders take it again here.
data_root = 'data/ade/ADEChallengeData2016'
train_dataloader = dict(dataset=dict(data_root=data_root))  # 8 GPUs x 4 images (the base's 4)
val_dataloader = dict(dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader
auto_scale_lr = dict(enable=False, base_batch_size=32)

model = dict(pretrained=None)  # the base's ResNet checkpoint; backbones load theirs via init_cfg

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
