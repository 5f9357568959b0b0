# RetinaNet-EMOv2-1M (FPN, 1x), COCO:
# 36.9 AP (published), 10.598M parameters.
_base_ = './_base_emov2.py'

model = dict(
    backbone=dict(
        arch='1m',
        init_cfg=dict(checkpoint='https://github.com/zhangzjn/data/raw/main/'
                                   'emov2_pretrained_weights/EMOv2_1M_224.pth')),
    neck=dict(in_channels=[32, 48, 80, 180]))
