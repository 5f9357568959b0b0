# DeepLabv3-EMO-2M on ADE20K, 512x512 crops, 80k iterations (the authors' recipe).
_base_ = './_base_emo.py'
model = dict(
    backbone=dict(
        arch='2m',
        window_size=7,
        drop_path_rate=0.05,
        init_cfg=dict(
            checkpoint='https://github.com/zhangzjn/EMO/raw/main/resources/EMO_2M/net.pth')),
    decode_head=dict(in_channels=200),  # EMO-2M stage4 width
    auxiliary_head=dict(in_channels=120))  # EMO-2M stage3 width
