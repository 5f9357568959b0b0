# What every Semantic FPN config here shares, whatever the backbone and recipe: mmseg's FPN-R50
# ADE20K config (the FPN with 256 channels and 4 levels, the FPNHead with 128 channels, dropout
# 0.1 and 150 classes, 512x512 crops, the (2048, 512) test resize, 160k iterations with
# evaluation and checkpoints every 16k) with this package's loader, hooks and test pipeline.
# The recipes (_recipe.py, the EfficientMod paper's, for EMO and EfficientMod; _base_emov2.py,
# the EMOv2 authors') put in the optimiser and schedule; the backbone bases the backbone.
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
train_dataloader = dict(dataset=dict(data_root=data_root))
val_dataloader = dict(dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader

model = dict(pretrained=None)  # the base's ResNet checkpoint; backbones load theirs via init_cfg
