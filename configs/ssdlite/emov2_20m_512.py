# SSDLite-EMOv2-20M, COCO, 512x512 (anchors of the 320 input, see the base):
# 38.3 AP (published), 21.214M parameters, 30.3G FLOPs.
_base_ = './_base_emov2_512.py'

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
