# Semantic FPN-EMOv2-1M, ADE20K, 512x512 crops, 160k iterations:
# 37.1 mIoU (published), 5.371M parameters, 23.4G FLOPs.
_base_ = './_base_emov2.py'

model = dict(
    backbone=dict(
        arch='1m',
        init_cfg=dict(checkpoint='https://github.com/zhangzjn/data/raw/main/'
                                   'emov2_pretrained_weights/EMOv2_1M_224.pth')),
    neck=dict(in_channels=[32, 48, 80, 180]))
