# Mask R-CNN-EMOv2-5M (FPN, 1x), COCO:
# 42.3 box AP, 39.0 mask AP (published), 24.888M parameters.
_base_ = './_base_emov2.py'

model = dict(
    backbone=dict(
        arch='5m',
        init_cfg=dict(checkpoint='https://github.com/zhangzjn/data/raw/main/'
                                   'emov2_pretrained_weights/EMOv2_5M_224.pth')),
    neck=dict(in_channels=[48, 72, 160, 288]))
