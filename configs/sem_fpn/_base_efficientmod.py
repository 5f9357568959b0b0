# Semantic FPN-EfficientMod: the shared recipe (_recipe.py) with an EfficientMod backbone whose
# four stages (strides 4-32) feed the FPN. The variants set `arch`, the checkpoint and the FPN
# input widths (the stage widths of that arch: the official configs have those of s and s_conv
# swapped).
_base_ = './_recipe.py'

model = dict(
    backbone=dict(
        _delete_=True,  # none of ResNetV1c's arguments apply
        type='EfficientMod',
        out_indices=(0, 1, 2, 3),
        init_cfg=dict(type='Pretrained', checkpoint=None)))  # set by each variant
