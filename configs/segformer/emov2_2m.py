# SegFormer-EMOv2-2M, ADE20K, 512x512 crops, 160k iterations:
# 40.2 mIoU (published), 2.676M parameters, 10.3G FLOPs.
_base_ = './_base_emov2.py'

model = dict(
    backbone=dict(
        arch='2m',
        init_cfg=dict(checkpoint='https://github.com/zhangzjn/data/raw/main/'
                                   'emov2_pretrained_weights/EMOv2_2M_224.pth')),
    decode_head=dict(
        # 288 (5M's stage4 width), not 200: the authors' config and log say 288, and the
        # published parameter count includes it
        in_channels=[32, 48, 120, 200], channels=288))
