# Mask R-CNN-EMOv2-1M (FPN, 1x), COCO:
# 37.1 box AP, 35.0 mask AP (published), 21.272M parameters.
_base_ = './_base_emov2.py'

model = dict(
    backbone=dict(
        arch='1m',
        init_cfg=dict(checkpoint='https://github.com/zhangzjn/data/raw/main/'
                                   'emov2_pretrained_weights/EMOv2_1M_224.pth')),
    neck=dict(in_channels=[32, 48, 80, 180]))
