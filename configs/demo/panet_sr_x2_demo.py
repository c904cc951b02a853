# A small PA-EDSR x2 that trains in about a minute on 2 CPU cores on the offline demo data
# (python tools/dataset_converters/make_demo_data.py). Same recipe as ../panet_sr_x2_div2k.py, scaled down:
# 32 channels, 4 ResBlocks with the pyramid attention in the middle, LR patches 16x16, 300 iterations.
_base_ = ['../panet_sr_x2_div2k.py']

experiment_name = 'panet_sr_x2_demo'
work_dir = f'./work_dirs/{experiment_name}'
scale = 2
data_root = 'data/demo'

model = dict(generator=dict(mid_channels=32, num_blocks=4, attention_cfg=dict(reduction=4)))

train_pipeline = [
    dict(type='LoadImageFromFile', key='img', color_type='color', channel_order='rgb', imdecode_backend='cv2'),
    dict(type='LoadImageFromFile', key='gt', color_type='color', channel_order='rgb', imdecode_backend='cv2'),
    dict(type='SetValues', dictionary=dict(scale=scale)),
    dict(type='PairedRandomCrop', gt_patch_size=16 * scale),
    dict(type='Flip', keys=['img', 'gt'], flip_ratio=0.5, direction='horizontal'),
    dict(type='Flip', keys=['img', 'gt'], flip_ratio=0.5, direction='vertical'),
    dict(type='RandomTransposeHW', keys=['img', 'gt'], transpose_ratio=0.5),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    num_workers=2,
    dataset=dict(
        prepare_cmd='python tools/dataset_converters/make_demo_data.py',
        data_root=data_root + '/DIV2K',
        pipeline=train_pipeline))
# the demo validates on its held-out Set5 photos (the paper config validates on DIV2K 801-810)
val_dataloader = dict(
    num_workers=0,
    dataset=dict(prepare_cmd='python tools/dataset_converters/make_demo_data.py',
                 metainfo=dict(dataset_type='set5', task_name='sisr'), data_root=data_root + '/Set5'))
val_evaluator = dict(
    _delete_=True,
    type='Evaluator',
    metrics=[
        dict(type='PSNR', crop_border=scale, convert_to='Y', prefix='Set5'),
        dict(type='SSIM', crop_border=scale, convert_to='Y', prefix='Set5'),
    ])
# the demo has only its held-out Set5 photos: test on them, not on the paper's five test sets
test_dataloader = dict(
    _delete_=True,
    num_workers=0,
    persistent_workers=False,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type='CheckedImageDataset',
        prepare_cmd='python tools/dataset_converters/make_demo_data.py',
        metainfo=dict(dataset_type='set5', task_name='sisr'),
        data_root=data_root + '/Set5',
        data_prefix=dict(img=f'LRbicx{scale}', gt='GTmod12'),
        pipeline=[
            dict(type='LoadImageFromFile', key='img', color_type='color', channel_order='rgb', imdecode_backend='cv2'),
            dict(type='LoadImageFromFile', key='gt', color_type='color', channel_order='rgb', imdecode_backend='cv2'),
            dict(type='PackInputs'),
        ]))
test_evaluator = dict(
    _delete_=True,
    type='Evaluator',
    metrics=[
        dict(type='PSNR', crop_border=scale, convert_to='Y', prefix='Set5'),
        dict(type='SSIM', crop_border=scale, convert_to='Y', prefix='Set5'),
    ])

train_cfg = dict(type='IterBasedTrainLoop', max_iters=300, val_interval=100)
optim_wrapper = dict(optimizer=dict(lr=5e-4))
param_scheduler = dict(type='MultiStepLR', by_epoch=False, milestones=[200], gamma=0.5)

default_hooks = dict(
    logger=dict(interval=20),
    checkpoint=dict(interval=100, max_keep_ckpts=2, save_best='Set5/PSNR', rule='greater'))
log_processor = dict(window_size=20)
randomness = dict(seed=0)
