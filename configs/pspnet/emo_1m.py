# PSPNet-EMO-1M on ADE20K, 512x512 crops, 80k iterations (the authors' recipe).
_base_ = './_base_emo.py'
model = dict(
    backbone=dict(
        arch='1m',
        window_size=7,
        drop_path_rate=0.04036,
        init_cfg=dict(
            checkpoint='https://github.com/zhangzjn/EMO/raw/main/resources/EMO_1M/net.pth')),
    decode_head=dict(in_channels=168),  # EMO-1M stage4 width
    auxiliary_head=dict(in_channels=80))  # EMO-1M stage3 width
