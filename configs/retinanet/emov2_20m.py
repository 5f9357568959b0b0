# RetinaNet-EMOv2-20M (FPN, 1x), COCO:
# 43.8 AP (published), 29.831M parameters.
_base_ = './_base_emov2.py'

model = dict(
    backbone=dict(
        arch='20m',
        # No 20M ImageNet weights were released, so the published 20M rows cannot be
        # reproduced from released files: this trains from scratch. To start from your
        # own file: a config with _base_ = this file and model = dict(backbone=dict(
        # init_cfg=dict(_delete_=True, type='Pretrained', checkpoint=PATH))).
        init_cfg=None),
    neck=dict(in_channels=[64, 128, 320, 448]))
