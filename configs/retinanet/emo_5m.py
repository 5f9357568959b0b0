# RetinaNet-EMO-5M (FPN, 1x), COCO: 38.9 AP (paper), 14,440,508 parameters.
_base_ = './_base_emo.py'

model = dict(
    backbone=dict(
        arch='5m', window_size=10, drop_path_rate=0.05,
        init_cfg=dict(checkpoint='https://github.com/zhangzjn/EMO/raw/main/resources/EMO_5M/net.pth')),
    neck=dict(in_channels=[48, 72, 160, 288]))
