# SwinIR colour denoising, Gaussian noise sigma 30 (0-255 scale), with pyramid attention.
# mmagic's SwinIR colour-denoising recipe (DFWB sub-images, 128x128 patches, batch 1 per GPU on 8 GPUs,
# Charbonnier, Adam 2e-4, 1.6M iterations; test on CBSD68 / Kodak24 / McMaster / Urban100) at sigma 30
# (mmagic ships 15 / 25 / 50), with one pyramid attention block after the third of the six residual
# Swin transformer blocks (layers.2). RSTBs work on tokens (B, H*W, 180); the wrapper reshapes them to
# a (B, 180, H, W) map around the attention. Training noise is drawn on the fly (mmagic's RandomNoise);
# validation / test noise is seeded per image (SeededGaussianNoise, 8-bit like stored noisy images), so
# every run sees the same noisy inputs (the PANet paper used fixed pre-generated noise; mmagic's own
# SwinIR configs draw fresh test noise every time).
# Cost: SwinIR denoises at full resolution, so the attention sees all 128x128 pixels of a patch:
# about 3.3*(128*128)^2*(90+180)*9*2 = 4.3 TFLOPs per patch forward. If that is too slow, train on
# 64x64 patches (PANet's own denoising patch is 48x48).
_base_ = 'mmagic::swinir/swinir_s128w8d6e180_8xb1-lr2e-4-1600k_dfwb-colorDN25.py'
custom_imports = dict(imports=['panet_mm'], allow_failed_imports=False)

experiment_name = 'swinir_pa_dn30_dfwb'
work_dir = f'./work_dirs/{experiment_name}'
# validation metrics logged at the iteration (mmagic's runtime logs them at the epoch, 0 in iteration runs)
default_hooks = dict(logger=dict(log_metric_by_epoch=False))
sigma = 30

model = dict(
    generator=dict(
        _delete_=True,
        type='WithPyramidAttention',
        generator=_base_.model.generator,  # mmagic's SwinIRNet config (embed_dim 180, 6x6 blocks, window 8)
        insert=[dict(after='layers.2')],
        attention_cfg=dict(reduction=2, res_scale=1.0)))

add_noise = dict(
    type='RandomNoise',
    params=dict(noise_type=['gaussian'], noise_prob=[1], gaussian_sigma=[sigma, sigma], gaussian_gray_noise_prob=0),
    keys=['img'])
load_pair = [
    dict(type='LoadImageFromFile', key='img', color_type='color', channel_order='rgb', imdecode_backend='cv2'),
    dict(type='LoadImageFromFile', key='gt', color_type='color', channel_order='rgb', imdecode_backend='cv2'),
]
train_pipeline = load_pair + [
    dict(type='SetValues', dictionary=dict(scale=1)),
    dict(type='PairedRandomCrop', gt_patch_size=128),
    dict(type='Flip', keys=['img', 'gt'], flip_ratio=0.5, direction='horizontal'),
    dict(type='Flip', keys=['img', 'gt'], flip_ratio=0.5, direction='vertical'),
    dict(type='RandomTransposeHW', keys=['img', 'gt'], transpose_ratio=0.5),
    add_noise,
    dict(type='PackInputs'),
]
test_pipeline = load_pair + [
    dict(type='SeededGaussianNoise', keys=['img'], sigma=sigma, seed=0),
    dict(type='PackInputs'),
]

# mmagic's SwinIR denoising configs validate with mmengine's ValLoop, which cannot call mmagic's
# metrics (BaseSampleWiseMetric.evaluate() takes 1 positional argument); MultiValLoop can.
val_cfg = dict(type='MultiValLoop')

train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = _base_.test_dataloader  # CBSD68, Kodak24, McMaster, Urban100
for loader in test_dataloader:
    loader['dataset']['pipeline'] = test_pipeline
