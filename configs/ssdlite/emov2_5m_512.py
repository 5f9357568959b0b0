# SSDLite-EMOv2-5M, COCO, 512x512 (anchors of the 320 input, see the base):
# 34.8 AP (published), 6.094M parameters, 8.0G FLOPs.
_base_ = './_base_emov2_512.py'

model = dict(
    backbone=dict(
        arch='5m',
        init_cfg=dict(checkpoint='https://github.com/zhangzjn/data/raw/main/'
                                   'emov2_pretrained_weights/EMOv2_5M_224.pth')),
    neck=dict(in_channels=(160, 288), out_channels=(160, 288, 512, 256, 256, 128)),
    bbox_head=dict(in_channels=(160, 288, 512, 256, 256, 128)))
