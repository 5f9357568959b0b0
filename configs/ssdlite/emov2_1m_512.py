# SSDLite-EMOv2-1M, COCO, 512x512 (anchors of the 320 input, see the base):
# 26.6 AP (published), 2.409M parameters, 2.3G FLOPs.
_base_ = './_base_emov2_512.py'

model = dict(
    backbone=dict(
        arch='1m',
        init_cfg=dict(checkpoint='https://github.com/zhangzjn/data/raw/main/'
                                   'emov2_pretrained_weights/EMOv2_1M_224.pth')),
    neck=dict(in_channels=(80, 180), out_channels=(80, 180, 512, 256, 256, 128)),
    bbox_head=dict(in_channels=(80, 180, 512, 256, 256, 128)))
