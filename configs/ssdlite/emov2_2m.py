# SSDLite-EMOv2-2M, COCO, 320x320 (the authors' "300"):
# 26.0 AP (published), 3.350M parameters, 1.2G FLOPs.
_base_ = './_base_emov2.py'

model = dict(
    backbone=dict(
        arch='2m',
        init_cfg=dict(checkpoint='https://github.com/zhangzjn/data/raw/main/'
                                   'emov2_pretrained_weights/EMOv2_2M_224.pth')),
    neck=dict(in_channels=(120, 200), out_channels=(120, 200, 512, 256, 256, 128)),
    bbox_head=dict(in_channels=(120, 200, 512, 256, 256, 128)))
