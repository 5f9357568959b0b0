# SSDLite-EMO-2M, COCO: 25.2 AP (paper), 3,342,716 parameters, 0.9G FLOPs at 320x320.
_base_ = './_base_emo.py'

model = dict(
    backbone=dict(
        arch='2m', window_size=7, drop_path_rate=0.05,
        init_cfg=dict(checkpoint='https://github.com/zhangzjn/EMO/raw/main/resources/EMO_2M/net.pth')),
    neck=dict(in_channels=(120, 200), out_channels=(120, 200, 512, 256, 256, 128)),
    bbox_head=dict(in_channels=(120, 200, 512, 256, 256, 128)))
