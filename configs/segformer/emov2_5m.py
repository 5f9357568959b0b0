# SegFormer-EMOv2-5M, ADE20K, 512x512 crops, 160k iterations:
# 43.0 mIoU (published), 5.378M parameters, 14.4G FLOPs.
_base_ = './_base_emov2.py'

model = dict(
    backbone=dict(
        arch='5m',
        init_cfg=dict(checkpoint='https://github.com/zhangzjn/data/raw/main/'
                                   'emov2_pretrained_weights/EMOv2_5M_224.pth')),
    decode_head=dict(in_channels=[48, 72, 160, 288], channels=288))  # stage4 width, as set
