# SSDLite-EMO on COCO 2017, the authors' recipe (EMO, ICCV 2023) on mmdet 3.x.
# mmdet's SSDLite-MobileNetV2 config already carries the SSDLite neck/head, anchors, test
# settings, the SSD augmentations at 320x320, RepeatDataset x5 over 120 epochs, evaluation every
# 5 epochs, 24 images per GPU and `auto_scale_lr.base_batch_size=192` (8 GPUs x 24): only the
# backbone and the optimiser differ. The variant files set `arch`, window and channels.
_base_ = 'mmdet::ssd/ssdlite_mobilenetv2-scratch_8xb24-600e_coco.py'

custom_imports = dict(imports=['emo_mm'], allow_failed_imports=False)

# The one place to change where COCO 2017 lives (annotations/, train2017/, val2017/).
data_root = 'data/coco/'

model = dict(
    backbone=dict(
        _delete_=True,  # none of MobileNetV2's arguments (nor its init) apply
        type='EMO',
        out_indices=(3, 4),
        frozen_stages=-1,
        norm_eval=True,
        norm_cfg=dict(type='SyncBN'),
        init_cfg=dict(type='Pretrained', checkpoint=None)))  # set by each variant

train_dataloader = dict(dataset=dict(dataset=dict(data_root=data_root)))
val_dataloader = dict(dataset=dict(data_root=data_root))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val2017.json')
test_evaluator = val_evaluator

# AdamW instead of SGD; no weight decay on parameters named `norm` (the authors' custom key;
# their other two keys, absolute_pos_embed and relative_position_bias_table, name nothing in EMO).
optim_wrapper = dict(
    optimizer=dict(_delete_=True, type='AdamW', lr=1.2e-3, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=dict(custom_keys={'norm': dict(decay_mult=0.)}))
# The authors saved a checkpoint every 5 epochs, with each evaluation.
default_hooks = dict(checkpoint=dict(interval=5))
