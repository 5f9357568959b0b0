# Semantic FPN-EMO: the shared recipe (_recipe.py) with an EMO backbone whose four stages 1-4
# (strides 4-32) feed the FPN; SyncBN trained, as in the EMO authors' segmentors. The variants
# set `arch`, window, drop path, checkpoint and the FPN input widths.
_base_ = './_recipe.py'

model = dict(
    backbone=dict(
        _delete_=True,  # none of ResNetV1c's arguments apply
        type='EMO',
        out_indices=(1, 2, 3, 4),
        norm_cfg=dict(type='SyncBN'),  # eps stays the authors' 1e-6 inside EMO
        init_cfg=dict(type='Pretrained', checkpoint=None)))  # set by each variant
