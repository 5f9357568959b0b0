# RetinaNet-EMOv2-2M (FPN, 1x), COCO:
# 39.3 AP (published), 11.562M parameters.
_base_ = './_base_emov2.py'

model = dict(
    backbone=dict(
        arch='2m',
        init_cfg=dict(checkpoint='https://github.com/zhangzjn/data/raw/main/'
                                   'emov2_pretrained_weights/EMOv2_2M_224.pth')),
    neck=dict(in_channels=[32, 48, 120, 200]))
