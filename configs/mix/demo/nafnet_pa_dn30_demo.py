# A small NAFNet denoiser with pyramid attention at its bottleneck that trains in about a minute on
# 2 CPU cores on the offline demo data (python tools/dataset_converters/make_demo_data.py). SIDD is not in the demo
# data, so the demo denoises synthetic Gaussian noise (sigma 30) added on the fly to the demo's HR
# training sub-images, validated on its Set5 images with per-image seeded noise (SeededGaussianNoise:
# the same noisy inputs in every run, so A/B runs compare like with like). Same model recipe as ../nafnet_pa_dn_sidd.py,
# scaled down: width 16, two encoder / decoder levels of one block, two middle blocks with the
# attention after the first (at 1/4 resolution, 64 channels), 32x32 patches, batch 8, 300 iterations.
# Plain NAFNet for A/B runs: --cfg-options "model.generator.insert=[]".
_base_ = ['../nafnet_pa_dn_sidd.py']

experiment_name = 'nafnet_pa_dn30_demo'
work_dir = f'./work_dirs/{experiment_name}'
data_root = 'data/demo'
sigma = 30

model = dict(
    generator=dict(
        generator=dict(mid_channels=16, enc_blk_nums=[1, 1], middle_blk_num=2, dec_blk_nums=[1, 1]),
        insert=[dict(after='middle_blks.0')]))

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
    dict(type='PairedRandomCrop', gt_patch_size=32),
    dict(type='Flip', keys=['img', 'gt'], flip_ratio=0.5, direction='horizontal'),
    dict(type='Flip', keys=['img', 'gt'], flip_ratio=0.5, direction='vertical'),
    dict(type='RandomTransposeHW', keys=['img', 'gt'], transpose_ratio=0.5),
    add_noise,
    dict(type='PackInputs'),
]
val_pipeline = load_pair + [
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
        filename_tmpl=dict(img='{}', gt='{}'),
        pipeline=train_pipeline))
val_dataloader = dict(
    num_workers=0,
    dataset=dict(
        type='CheckedImageDataset',
        prepare_cmd='python tools/dataset_converters/make_demo_data.py',
        metainfo=dict(dataset_type='set5', task_name='denoising'),
        data_root=data_root + '/Set5',
        data_prefix=dict(img='GTmod12', gt='GTmod12'),
        filename_tmpl=dict(img='{}', gt='{}'),
        pipeline=val_pipeline))
test_dataloader = val_dataloader
val_evaluator = [dict(type='PSNR', prefix='Set5'), dict(type='SSIM', prefix='Set5')]
test_evaluator = val_evaluator

train_cfg = dict(type='IterBasedTrainLoop', max_iters=300, val_interval=100)
optim_wrapper = dict(optimizer=dict(lr=1e-3))
param_scheduler = dict(type='CosineAnnealingLR', by_epoch=False, T_max=300, eta_min=1e-6)

default_hooks = dict(
    logger=dict(interval=20),
    checkpoint=dict(interval=100, max_keep_ckpts=2, out_dir=None, save_best='Set5/PSNR', rule='greater'))
custom_hooks = []
log_processor = dict(window_size=20)
randomness = dict(seed=0)
visualizer = dict(bgr2rgb=True)
