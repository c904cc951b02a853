# A small SwinIR colour denoiser (Gaussian sigma 30) with pyramid attention that trains in about a
# minute on 2 CPU cores on the offline demo data (python tools/dataset_converters/make_demo_data.py): the demo's HR
# training sub-images with noise drawn on the fly, validated on centre 32x32 crops of its Set5 images
# (the attention is quadratic in pixels and SwinIR denoises at full resolution: keep images small)
# with per-image seeded noise (SeededGaussianNoise: the same noisy inputs in every run).
# Same recipe as ../swinir_pa_dn30_dfwb.py, scaled down: embedding 24, two RSTBs of depth 2, window 8,
# the attention after the first RSTB, 16x16 patches, batch 8, 200 iterations.
# Plain SwinIR for A/B runs: --cfg-options "model.generator.insert=[]".
_base_ = ['../swinir_pa_dn30_dfwb.py']

experiment_name = 'swinir_pa_dn30_demo'
work_dir = f'./work_dirs/{experiment_name}'
data_root = 'data/demo'
sigma = 30

model = dict(
    generator=dict(
        generator=dict(img_size=16, depths=[2, 2], embed_dim=24, num_heads=[2, 2]),
        insert=[dict(after='layers.0')]))

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
    dict(type='PairedRandomCrop', gt_patch_size=16),
    dict(type='Flip', keys=['img', 'gt'], flip_ratio=0.5, direction='horizontal'),
    dict(type='Flip', keys=['img', 'gt'], flip_ratio=0.5, direction='vertical'),
    dict(type='RandomTransposeHW', keys=['img', 'gt'], transpose_ratio=0.5),
    add_noise,
    dict(type='PackInputs'),
]
val_pipeline = load_pair + [
    dict(type='Crop', keys=['img', 'gt'], crop_size=(32, 32), random_crop=False),
    dict(type='SeededGaussianNoise', keys=['img'], sigma=sigma, seed=0),  # the same noisy input in every run
    dict(type='PackInputs'),
]

# MMagicInferencer / tools/restore.py: the input file is the noisy photo itself (without this, mmagic's inferencer
# falls back to the val_pipeline above and adds seeded noise to the user's photo)
inference_pipeline = [load_pair[0], dict(type='PackInputs')]

train_dataloader = dict(
    num_workers=2,
    batch_size=8,
    dataset=dict(
        type='CheckedImageDataset',
        prepare_cmd='python tools/dataset_converters/make_demo_data.py',
        ann_file='meta_info_DIV2K800sub_GT.txt',
        metainfo=dict(dataset_type='div2k', task_name='denoising'),
        data_root=data_root + '/DIV2K',
        data_prefix=dict(img='DIV2K_train_HR_sub', gt='DIV2K_train_HR_sub'),
        pipeline=train_pipeline))
val_dataloader = dict(
    num_workers=0,
    dataset=dict(
        type='CheckedImageDataset',
        prepare_cmd='python tools/dataset_converters/make_demo_data.py',
        metainfo=dict(dataset_type='set5', task_name='denoising'),
        data_root=data_root + '/Set5',
        data_prefix=dict(img='GTmod12', gt='GTmod12'),
        pipeline=val_pipeline))
val_evaluator = [dict(type='PSNR', prefix='Set5'), dict(type='SSIM', prefix='Set5')]
# mmagic's SwinIR config tests on four sets; the demo tests on its Set5 crops only.
test_dataloader = dict(
    _delete_=True,
    num_workers=0,
    persistent_workers=False,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type='CheckedImageDataset',
        prepare_cmd='python tools/dataset_converters/make_demo_data.py',
        metainfo=dict(dataset_type='set5', task_name='denoising'),
        data_root=data_root + '/Set5',
        data_prefix=dict(img='GTmod12', gt='GTmod12'),
        pipeline=val_pipeline))
test_evaluator = val_evaluator

train_cfg = dict(type='IterBasedTrainLoop', max_iters=200, val_interval=100)
optim_wrapper = dict(optimizer=dict(lr=5e-4))
param_scheduler = dict(type='MultiStepLR', by_epoch=False, milestones=[150], gamma=0.5)

default_hooks = dict(
    logger=dict(interval=20),
    checkpoint=dict(interval=100, max_keep_ckpts=2, out_dir=None, save_best='Set5/PSNR', rule='greater'))
custom_hooks = []
log_processor = dict(window_size=20)
randomness = dict(seed=0)
