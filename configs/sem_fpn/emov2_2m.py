# Semantic FPN-EMOv2-2M, ADE20K, 512x512 crops, 160k iterations:
# 39.9 mIoU (published), 6.290M parameters, 25.1G FLOPs.
_base_ = './_base_emov2.py'

model = dict(
    backbone=dict(
        arch='2m',
        init_cfg=dict(checkpoint='https://github.com/zhangzjn/data/raw/main/'
                                   'emov2_pretrained_weights/EMOv2_2M_224.pth')),
    neck=dict(in_channels=[32, 48, 120, 200]))
