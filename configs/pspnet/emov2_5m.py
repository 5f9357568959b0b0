# PSPNet-EMOv2-5M, ADE20K, 512x512 crops, 80k iterations:
# 39.1 mIoU (published), 8.196M parameters without the auxiliary head, 8.6G FLOPs.
_base_ = './_base_emov2.py'

model = dict(
    backbone=dict(
        arch='5m',
        init_cfg=dict(checkpoint='https://github.com/zhangzjn/data/raw/main/'
                                   'emov2_pretrained_weights/EMOv2_5M_224.pth')),
    decode_head=dict(in_channels=288),  # stage4 width
    auxiliary_head=dict(in_channels=160))  # stage3 width
