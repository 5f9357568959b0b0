# SSDLite-EMOv2-2M, COCO, 512x512 (anchors of the 320 input, see the base):
# 30.7 AP (published), 3.350M parameters, 4.0G FLOPs.
_base_ = './_base_emov2_512.py'

model = dict(
    backbone=dict(
        arch='2m',
        init_cfg=dict(checkpoint='https://github.com/zhangzjn/data/raw/main/'
                                   'emov2_pretrained_weights/EMOv2_2M_224.pth')),
    neck=dict(in_channels=(120, 200), out_channels=(120, 200, 512, 256, 256, 128)),
    bbox_head=dict(in_channels=(120, 200, 512, 256, 256, 128)))
