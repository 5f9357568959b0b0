# Semantic FPN-EMO-5M, ADE20K, 512x512 crops, 40k iterations: 40.3 mIoU (EMO paper, Table 12),
# 8,969,182 parameters.
_base_ = './_base_emo.py'

model = dict(
    backbone=dict(
        arch='5m', window_size=16, drop_path_rate=0.05,
        init_cfg=dict(checkpoint='https://github.com/zhangzjn/EMO/raw/main/resources/EMO_5M/net.pth')),
    neck=dict(in_channels=[48, 72, 160, 288]))
