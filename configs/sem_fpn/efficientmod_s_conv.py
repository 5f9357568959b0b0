# Semantic FPN-EfficientMod-s_conv, ADE20K, 512x512 crops, 40k iterations: 43.5 mIoU
# (EfficientMod paper), 16,690,894 parameters.
_base_ = './_base_efficientmod.py'

# The authors' ImageNet checkpoint (EfficientMod-s-Conv, 80.5% top-1) is on a cloud drive
# that pip cannot reach. Download it (a timm checkpoint: its `state_dict` is read) from
#   https://drive.google.com/drive/folders/1EY637XRiDPL4AwrVGESJWsK-ZP2GhnaI
# to this path, or give its path: --cfg-options model.backbone.init_cfg.checkpoint=PATH
checkpoint = 'checkpoints/efficientmod_s_conv.pth'

model = dict(
    backbone=dict(arch='s_conv', drop_path_rate=0.02, init_cfg=dict(checkpoint=checkpoint)),
    neck=dict(in_channels=[40, 80, 160, 344]))
