# Semantic FPN-EMO-1M, ADE20K, 512x512 crops, 40k iterations: no published result,
# 5,280,302 parameters.
_base_ = './_base_emo.py'

model = dict(
    backbone=dict(
        arch='1m', window_size=7, drop_path_rate=0.04036,
        init_cfg=dict(checkpoint='https://github.com/zhangzjn/EMO/raw/main/resources/EMO_1M/net.pth')),
    neck=dict(in_channels=[32, 48, 80, 168]))
