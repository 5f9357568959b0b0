# DeepLabv3-EMOv2-20M, ADE20K, 512x512 crops, 80k iterations:
# 43.3 mIoU (published), 26.062M parameters without the auxiliary head, 31.6G FLOPs.
_base_ = './_base_emov2.py'

model = dict(
    backbone=dict(
        arch='20m',
        # No 20M ImageNet weights were released, so the published 20M rows cannot be
        # reproduced from released files: this trains from scratch. To start from your
        # own file: a config with _base_ = this file and model = dict(backbone=dict(
        # init_cfg=dict(_delete_=True, type='Pretrained', checkpoint=PATH))).
        init_cfg=None),
    decode_head=dict(in_channels=448),  # stage4 width
    auxiliary_head=dict(in_channels=320))  # stage3 width
