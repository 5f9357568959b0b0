# Mask R-CNN-EMO-5M (FPN, 1x), COCO: 39.3 box AP / 36.4 mask AP (EMO paper, Table 12),
# 24,869,944 parameters.
_base_ = './_base_emo.py'

model = dict(
    backbone=dict(
        arch='5m', window_size=10, drop_path_rate=0.05,
        init_cfg=dict(checkpoint='https://github.com/zhangzjn/EMO/raw/main/resources/EMO_5M/net.pth')),
    neck=dict(in_channels=[48, 72, 160, 288]))
