# DeepLabv3-EMOv2-2M, ADE20K, 512x512 crops, 80k iterations:
# 36.8 mIoU (published), 6.658M parameters without the auxiliary head, 5.0G FLOPs.
_base_ = './_base_emov2.py'

model = dict(
    backbone=dict(
        arch='2m',
        init_cfg=dict(checkpoint='https://github.com/zhangzjn/data/raw/main/'
                                   'emov2_pretrained_weights/EMOv2_2M_224.pth')),
    decode_head=dict(in_channels=200),  # stage4 width
    auxiliary_head=dict(in_channels=120))  # stage3 width
