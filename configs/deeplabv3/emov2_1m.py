# DeepLabv3-EMOv2-1M, ADE20K, 512x512 crops, 80k iterations:
# 34.6 mIoU (published), 5.607M parameters without the auxiliary head, 3.3G FLOPs.
_base_ = './_base_emov2.py'

model = dict(
    backbone=dict(
        arch='1m',
        init_cfg=dict(checkpoint='https://github.com/zhangzjn/data/raw/main/'
                                   'emov2_pretrained_weights/EMOv2_1M_224.pth')),
    decode_head=dict(in_channels=180),  # stage4 width
    auxiliary_head=dict(in_channels=80))  # stage3 width
