# RetinaNet-EMOv2-5M (FPN, 1x), COCO:
# 41.5 AP (published), 14.458M parameters.
_base_ = './_base_emov2.py'

model = dict(
    backbone=dict(
        arch='5m',
        init_cfg=dict(checkpoint='https://github.com/zhangzjn/data/raw/main/'
                                   'emov2_pretrained_weights/EMOv2_5M_224.pth')),
    neck=dict(in_channels=[48, 72, 160, 288]))
