# A small PANet demosaicing model (zero-filled GRBG Bayer mosaic) that trains in about a minute on 2 CPU cores on
# the offline demo data (python tools/dataset_converters/make_demo_data.py). Same recipe as
# ../panet_demosaic_div2k.py, scaled down:
# 16 channels, 2 ResBlocks with the pyramid attention between them, 16x16 patches, batch 8, 600 iterations
# (lr 3e-3, halved at 400; demosaicing learns slower than the other demo tasks: with the others' 300 iterations at
# lr 1e-3 it reached 22.5 dB). After 600 iterations (about a minute): 25.6 dB on the demo Set5 crops, 1.1 dB below
# bilinear demosaicing (26.7 dB; the mosaic itself: 8.8 dB). tools/analysis_tools/quick_quality.py demosaic
# reports both.
# Validation / test: the 5 held-out demo Set5 photos (centre 48x48 crops: the attention is quadratic in pixels,
# this keeps a CPU validation to seconds), mosaicked on the fly after the crop (BayerMosaic is deterministic;
# the demo has no prepared inputs); RGB PSNR / SSIM without crop.
_base_ = ['../panet_demosaic_div2k.py']

experiment_name = 'panet_demosaic_demo'
work_dir = f'./work_dirs/{experiment_name}'
pattern = 'GRBG'
data_root = 'data/demo'

model = dict(generator=dict(mid_channels=16, num_blocks=2), test_cfg=dict(align=2))  # align: as the paper config

train_pipeline = [
    _base_.load_gt,
    dict(type='Crop', keys=['gt'], crop_size=(16, 16), random_crop=True),
    dict(type='Flip', keys=['gt'], flip_ratio=0.5, direction='horizontal'),
    dict(type='Flip', keys=['gt'], flip_ratio=0.5, direction='vertical'),
    dict(type='RandomTransposeHW', keys=['gt'], transpose_ratio=0.5),
    _base_.copy_gt_to_img,
    dict(type='BayerMosaic', keys=['img'], pattern=pattern),  # after every geometric transform
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
    dict(type='BayerMosaic', keys=['img'], pattern=pattern),
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
        metainfo=dict(dataset_type='set5', task_name='demosaicing'),
        data_root=data_root + '/Set5',
        data_prefix=dict(gt='GTmod12'),
        pipeline=val_pipeline))
val_evaluator = dict(
    _delete_=True,
    type='Evaluator',
    metrics=[dict(type='PSNR', crop_border=0, prefix='Set5'), dict(type='SSIM', crop_border=0, prefix='Set5')])
test_dataloader = dict(val_dataloader)
test_evaluator = dict(val_evaluator)

train_cfg = dict(type='IterBasedTrainLoop', max_iters=600, val_interval=200)
optim_wrapper = dict(optimizer=dict(lr=3e-3))
param_scheduler = dict(type='MultiStepLR', by_epoch=False, milestones=[400], gamma=0.5)

default_hooks = dict(
    logger=dict(interval=20),
    checkpoint=dict(interval=200, max_keep_ckpts=2, save_best='Set5/PSNR', rule='greater'))
log_processor = dict(window_size=20)
randomness = dict(seed=0)
