# Mask R-CNN-EMO-2M (FPN, 1x), COCO: no published result, 22,183,736 parameters.
_base_ = './_base_emo.py'

model = dict(
    backbone=dict(
        arch='2m', window_size=7, drop_path_rate=0.05,
        init_cfg=dict(checkpoint='https://github.com/zhangzjn/EMO/raw/main/resources/EMO_2M/net.pth')),
    neck=dict(in_channels=[32, 48, 120, 200]))
