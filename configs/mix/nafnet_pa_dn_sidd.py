# NAFNet real-noise denoising (SIDD) with pyramid attention at the bottleneck: mmagic's own NAFNet
# SIDD recipe (width 64, encoder blocks 2-2-4-8, 12 middle blocks, decoder 2-2-2-2, PSNR loss, AdamW
# 1e-3 with cosine decay, 256x256 patches, 400k iterations) with one pyramid attention block in the
# middle of the middle blocks (after middle_blks.5). After four 2x down-samplings the features there
# are 1/16 of the patch side (16x16 for a 256x256 patch) with 1024 channels, so the attention is cheap
# (about 3.3*256^2*(128+1024)*9*2 = 4.5 GFLOPs per patch) while every position sees the whole patch:
# the place to put it in a U-Net.
_base_ = 'mmagic::nafnet/nafnet_c64eb2248mb12db2222_8xb8-lr1e-3-400k_sidd.py'
custom_imports = dict(imports=['panet_mm'], allow_failed_imports=False)

experiment_name = 'nafnet_pa_dn_sidd'
work_dir = f'./work_dirs/{experiment_name}'
# validation metrics logged at the iteration (mmagic's runtime logs them at the epoch, 0 in iteration runs)
default_hooks = dict(logger=dict(log_metric_by_epoch=False))

model = dict(
    generator=dict(
        _delete_=True,
        type='WithPyramidAttention',
        generator=_base_.model.generator,  # mmagic's NAFNet config, unchanged
        insert=[dict(after='middle_blks.5')],
        attention_cfg=dict(reduction=8, res_scale=1.0)))  # 1024 channels: r=8 as PA-EDSR at C=256
