# Mask R-CNN-EfficientMod: the shared recipe (_recipe.py) with an EfficientMod backbone whose
# four stages (strides 4-32) feed the FPN, as in the EfficientMod authors' configs (LayerNorm
# only, so nothing to freeze). The variants set `arch`, the checkpoint and the FPN input widths.
_base_ = './_recipe.py'

model = dict(
    backbone=dict(
        _delete_=True,  # none of ResNet's arguments apply
        type='EfficientMod',
        out_indices=(0, 1, 2, 3),
        init_cfg=dict(type='Pretrained', checkpoint=None)))  # set by each variant
