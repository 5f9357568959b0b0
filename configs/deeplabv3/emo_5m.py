# DeepLabv3-EMO-5M on ADE20K, 512x512 crops, 80k iterations (the authors' recipe).
_base_ = './_base_emo.py'
model = dict(
    backbone=dict(
        arch='5m',
        window_size=16,
        drop_path_rate=0.05,
        init_cfg=dict(
            checkpoint='https://github.com/zhangzjn/EMO/raw/main/resources/EMO_5M/net.pth')),
    decode_head=dict(in_channels=288),  # EMO-5M stage4 width
    auxiliary_head=dict(in_channels=160))  # EMO-5M stage3 width
