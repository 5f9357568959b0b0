# Semantic FPN-EMOv2-5M, ADE20K, 512x512 crops, 160k iterations:
# 42.4 mIoU (log: 42.26) (published), 8.987M parameters, 29.1G FLOPs.
_base_ = './_base_emov2.py'

model = dict(
    backbone=dict(
        arch='5m',
        init_cfg=dict(checkpoint='https://github.com/zhangzjn/data/raw/main/'
                                   'emov2_pretrained_weights/EMOv2_5M_224.pth')),
    neck=dict(in_channels=[48, 72, 160, 288]))
