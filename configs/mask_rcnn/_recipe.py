# Mask R-CNN (FPN, 1x) on COCO 2017 with the EfficientMod paper's recipe (ICLR 2024; the usual
# one for efficient backbones), shared by every backbone here so that they compare on equal
# terms. mmdet's Mask R-CNN-R50 1x config already carries the heads, the (1333, 800) inputs, the
# 12 epochs with a 500-iteration linear warm-up (from 0.001x) and steps at epochs 8 and 11, and
# bbox + segm evaluation every epoch: the optimiser and the batch differ. The backbone bases
# (_base_emo.py, _base_efficientmod.py) put in the backbone; the variants its size and widths.
_base_ = 'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py'

# emo_mm.datasets.checked_loader: an image file that cannot be read is named, by every tool and API.
custom_imports = dict(imports=['emo_mm', 'emo_mm.datasets.checked_loader'],
                      allow_failed_imports=False)
custom_hooks = [dict(type='RNGStateHook')]  # --resume continues exactly

# The one place to change where COCO 2017 lives (annotations/, train2017/, val2017/).
data_root = 'data/coco/'

# 8 GPUs x 4 images.
train_dataloader = dict(batch_size=4, num_workers=4, dataset=dict(data_root=data_root))
# Test images: a grayscale or BGRA array given to the inference API becomes 3-channel
# (emo_mm.datasets.transforms.ToThreeChannels); otherwise the base's pipeline. The loader keeps
# the name LoadImageFromFile, by which DetInferencer and MMSegInferencer find it; in our scopes
# (mmdet, mmseg) that name is emo_mm's CheckedLoadImageFromFile (names unreadable files).
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ToThreeChannels'),
    dict(type='Resize', scale=(1333, 800), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
val_dataloader = dict(dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val2017.json')
test_evaluator = val_evaluator
auto_scale_lr = dict(base_batch_size=32)

# AdamW instead of SGD (no gradient clipping, every parameter decays).
optim_wrapper = dict(
    optimizer=dict(_delete_=True, type='AdamW', lr=2e-4, betas=(0.9, 0.999), weight_decay=0.05))
