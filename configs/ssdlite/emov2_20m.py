# SSDLite-EMOv2-20M, COCO, 320x320 (the authors' "300"):
# 33.1 AP (published), 21.214M parameters, 9.1G FLOPs.
_base_ = './_base_emov2.py'

model = dict(
    backbone=dict(
        arch='20m',
        # No 20M ImageNet weights were released, so the published 20M rows cannot be
        # reproduced from released files: this trains from scratch. To start from your
        # own file: a config with _base_ = this file and model = dict(backbone=dict(
        # init_cfg=dict(_delete_=True, type='Pretrained', checkpoint=PATH))).
        init_cfg=None),
    neck=dict(in_channels=(320, 448), out_channels=(320, 448, 512, 256, 256, 128)),
    bbox_head=dict(in_channels=(320, 448, 512, 256, 256, 128)))
