# SSDLite-EMOv2-5M, COCO, 320x320 (the authors' "300"):
# 29.6 AP (published), 6.094M parameters, 2.4G FLOPs.
_base_ = './_base_emov2.py'

model = dict(
    backbone=dict(
        arch='5m',
        init_cfg=dict(checkpoint='https://github.com/zhangzjn/data/raw/main/'
                                   'emov2_pretrained_weights/EMOv2_5M_224.pth')),
    neck=dict(in_channels=(160, 288), out_channels=(160, 288, 512, 256, 256, 128)),
    bbox_head=dict(in_channels=(160, 288, 512, 256, 256, 128)))
