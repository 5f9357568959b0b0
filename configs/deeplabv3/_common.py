# What every DeepLabv3 config here shares, whatever the backbone and recipe: mmseg's own
# DeepLabv3 ADE20K 80k config (ASPP decode head, FCN auxiliary head, 512x512 crops) with this
# package's loader, hooks and test pipeline, and the heads on stages 3 and 4. The backbone
# bases (_base_emo.py, _base_emov2.py) put in the backbone and the authors' optimiser and
# schedule; the variants its size and the head input widths.
_base_ = ['mmseg::deeplabv3/deeplabv3_r50-d8_4xb4-80k_ade20k-512x512.py']
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
    pretrained=None,  # the base's ResNet checkpoint; our backbones load theirs through init_cfg
    decode_head=dict(in_index=3, channels=256),  # stage4; ASPP dilations 1/12/24/36 from the base
    auxiliary_head=dict(in_index=2))  # stage3; FCN with 256 channels, one conv, weight 0.4
