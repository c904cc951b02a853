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

# MMagicInferencer / tools/restore.py: the input file is the noisy photo itself (without this, mmagic's inferencer
# falls back to the test_pipeline above and adds seeded noise to the user's photo)
inference_pipeline = [load_pair[0], dict(type='PackInputs')]

# mmagic's SwinIR denoising configs validate with mmengine's ValLoop, which cannot call mmagic's
# metrics (BaseSampleWiseMetric.evaluate() takes 1 positional argument); MultiValLoop can.
val_cfg = dict(type='MultiValLoop')

# Data (CheckedImageDataset: a missing folder names what to do).
# Training: mmagic's DFWB layout, which no panet_mm tool writes: the sub-images of SwinIR's denoising training
# set (DIV2K + Flickr2K + BSD400 + WED) directly in data/DFWB/, listed in data/DFWB/meta_info_DFWB8550sub_GT.txt
# (see mmagic's SwinIR README). To train on DIV2K instead (PANet's denoising data), point the dataset at
# python tools/dataset_converters/prepare_div2k.py's output: data_root='data/DIV2K',
# ann_file='meta_info_DIV2K800sub_GT.txt', data_prefix=dict(img='DIV2K_train_HR_sub', gt='DIV2K_train_HR_sub').
# Validation / test: the clean images of the layout prepare_testsets.py writes, data/{SET}/GT (mmagic reads
# data/McMaster and data/denoising_gaussian_test/{SET}, which nothing here writes); the seeded noise above is
# added on the fly and gives the same pixels as that tool's noisy_sigma30 files.
train_dataloader = dict(
    dataset=dict(
        type='CheckedImageDataset',
        prepare_cmd="put SwinIR's DFWB training sub-images (DIV2K, Flickr2K, BSD400, WED) into data/DFWB/ and list "
        "them in data/DFWB/meta_info_DFWB8550sub_GT.txt (mmagic's SwinIR README), or train on DIV2K (see the "
        'comment in configs/mix/swinir_pa_dn30_dfwb.py)',
        pipeline=train_pipeline))


def clean_test_set(name):  # (functions are not config keys: mmengine drops them)
    return dict(
        type='CheckedImageDataset',
        prepare_cmd=f'python tools/dataset_converters/prepare_testsets.py --{name.lower()} PATH/TO/{name} '
        '(README "Preparing the restoration test sets")',
        metainfo=dict(dataset_type=name.lower(), task_name='denoising'),
        data_root=f'data/{name}',
        data_prefix=dict(img='GT', gt='GT'),  # the input is the clean image; SeededGaussianNoise adds the noise
        pipeline=test_pipeline)


def test_loader(name):
    return dict(
        num_workers=4,
        persistent_workers=False,
        drop_last=False,
        sampler=dict(type='DefaultSampler', shuffle=False),
        dataset=clean_test_set(name))


val_dataloader = dict(dataset=dict(clean_test_set('McMaster'), _delete_=True))
# mmagic's test sets and metrics (RGB PSNR / SSIM without border crop, as for denoising in the PANet paper)
test_dataloader = [test_loader(name) for name in ('CBSD68', 'Kodak24', 'McMaster', 'Urban100')]
# Checkpoints inside the run's work_dir (mmagic's out_dir='./work_dirs' put them under ./work_dirs/<name>/
# whatever --work-dir said); the best one by McMaster's PSNR, the validation metric's name (mmagic's
# save_best='PSNR' names no metric of this validation set).
default_hooks = dict(checkpoint=dict(out_dir=None, save_best='McMaster/PSNR', rule='greater'))
