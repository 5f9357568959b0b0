# Mask R-CNN-EMO-1M (FPN, 1x), COCO: no published result, 21,181,064 parameters.
_base_ = './_base_emo.py'

model = dict(
    backbone=dict(
        arch='1m', window_size=7, drop_path_rate=0.04036,
        init_cfg=dict(checkpoint='https://github.com/zhangzjn/EMO/raw/main/resources/EMO_1M/net.pth')),
    neck=dict(in_channels=[32, 48, 80, 168]))
