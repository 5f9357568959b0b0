# SSDLite-EMO-1M, COCO: 22.0 AP (paper), 2,311,980 parameters, 0.6G FLOPs at 320x320.
_base_ = './_base_emo.py'

model = dict(
    backbone=dict(
        arch='1m', window_size=7, drop_path_rate=0.04036,
        init_cfg=dict(checkpoint='https://github.com/zhangzjn/EMO/raw/main/resources/EMO_1M/net.pth')),
    neck=dict(in_channels=(80, 168), out_channels=(80, 168, 512, 256, 256, 128)),
    bbox_head=dict(in_channels=(80, 168, 512, 256, 256, 128)))
