# Mask R-CNN-EMO: the shared recipe (_recipe.py) with an EMO backbone whose four stages 1-4
# (strides 4-32) feed the FPN. BatchNorm as in the EMO authors' FPN detectors (RetinaNet):
# SyncBN, statistics frozen (4 images per GPU are too few to estimate them), stem and stage 1
# frozen. The variants set `arch`, window, drop path, checkpoint and the FPN input widths.
_base_ = './_recipe.py'

model = dict(
    backbone=dict(
        _delete_=True,  # none of ResNet's arguments apply
        type='EMO',
        out_indices=(1, 2, 3, 4),
        frozen_stages=1,
        norm_eval=True,
        norm_cfg=dict(type='SyncBN'),
        init_cfg=dict(type='Pretrained', checkpoint=None)))  # set by each variant
