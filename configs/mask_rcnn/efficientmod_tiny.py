# Mask R-CNN-EfficientMod on the tiny shapes dataset (`python tools/make_tiny_datasets.py` writes
# it to data/tiny_coco/): the tiny EMO-1M config (data, heads, CPU-sized schedule) with a small
# EfficientMod of EMO-1M's size, a custom arch with both of the paper's block kinds (EfficientMod
# blocks in every stage, attention blocks in stages 3 and 4), from scratch. For demos and tests
# of the EfficientMod path (training, ONNX export); the COCO configs are efficientmod_s / s_conv.
_base_ = './emo_1m_tiny.py'

model = dict(
    backbone=dict(
        _delete_=True,  # none of EMO's arguments apply
        type='EfficientMod',
        arch=dict(embed_dims=(32, 48, 80, 160), depths=(1, 1, 2, 1),
                  attention_depths=(0, 0, 1, 1), mlp_ratios=(1, 4), att_ratios=(2, 2, 2, 2)),
        out_indices=(0, 1, 2, 3)),  # default init: the authors' classifier initialisation
    neck=dict(in_channels=[32, 48, 80, 160]))
