# SSDLite-EMO-5M, COCO: 27.9 AP (paper), 6,076,540 parameters, 1.8G FLOPs at 320x320.
_base_ = './_base_emo.py'

model = dict(
    backbone=dict(
        arch='5m', window_size=10, drop_path_rate=0.05,
        init_cfg=dict(checkpoint='https://github.com/zhangzjn/EMO/raw/main/resources/EMO_5M/net.pth')),
    neck=dict(in_channels=(160, 288), out_channels=(160, 288, 512, 256, 256, 128)),
    bbox_head=dict(in_channels=(160, 288, 512, 256, 256, 128)))
