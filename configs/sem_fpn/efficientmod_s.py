# Semantic FPN-EfficientMod-s, ADE20K, 512x512 crops, 40k iterations: 46.0 mIoU (EfficientMod
# paper), 16,729,374 parameters.
_base_ = './_base_efficientmod.py'

# The authors' ImageNet checkpoint (EfficientMod-s, distilled, 81.9% top-1) is on a cloud drive
# that pip cannot reach. Download it (a timm checkpoint: its `state_dict` is read) from
#   https://drive.google.com/drive/folders/1rJs8LcWmdTFmj-IJ0cmlVp_MxGfZFsFk
# to this path, or give its path: --cfg-options model.backbone.init_cfg.checkpoint=PATH
checkpoint = 'checkpoints/efficientmod_s.pth'

model = dict(
    backbone=dict(arch='s', drop_path_rate=0.02, init_cfg=dict(checkpoint=checkpoint)),
    neck=dict(in_channels=[32, 64, 144, 312]))
