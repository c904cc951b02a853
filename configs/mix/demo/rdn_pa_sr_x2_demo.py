# A small RDN x2 with pyramid attention that trains in about a minute on 2 CPU cores on the offline
# demo data (python tools/dataset_converters/make_demo_data.py). Same recipe as ../rdn_pa_sr_x2_div2k.py, scaled down:
# 32 channels, 4 RDBs of 3 layers (growth 16) with the attention after the second, LR patches 16x16,
# 300 iterations. Plain RDN for A/B runs: --cfg-options "model.generator.insert=[]".
_base_ = ['../rdn_pa_sr_x2_div2k.py']

experiment_name = 'rdn_pa_sr_x2_demo'
work_dir = f'./work_dirs/{experiment_name}'
scale = 2
data_root = 'data/demo'

model = dict(
    generator=dict(
        generator=dict(mid_channels=32, num_blocks=4, num_layers=3, channel_growth=16),
        insert=[dict(after='rdbs.1')]))

load_pair = [
    dict(type='LoadImageFromFile', key='img', color_type='color', channel_order='rgb', imdecode_backend='cv2'),
    dict(type='LoadImageFromFile', key='gt', color_type='color', channel_order='rgb', imdecode_backend='cv2'),
]
train_pipeline = load_pair + [
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
        type='CheckedImageDataset',
        prepare_cmd='python tools/dataset_converters/make_demo_data.py',
        data_root=data_root + '/DIV2K',
        pipeline=train_pipeline))
val_dataloader = dict(
    num_workers=0,
    dataset=dict(
        type='CheckedImageDataset',
        prepare_cmd='python tools/dataset_converters/make_demo_data.py',
        data_root=data_root + '/Set5'))
val_evaluator = dict(metrics=[
    dict(type='PSNR', crop_border=scale, convert_to='Y', prefix='Set5'),
    dict(type='SSIM', crop_border=scale, convert_to='Y', prefix='Set5'),
])
# mmagic's RDN config tests on a list of sets; the demo tests on its Set5 only.
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
        pipeline=load_pair + [dict(type='PackInputs')]))
test_evaluator = dict(_delete_=True, type='Evaluator', metrics=val_evaluator['metrics'])
test_cfg = dict(type='MultiTestLoop')

train_cfg = dict(type='IterBasedTrainLoop', max_iters=300, val_interval=100)
optim_wrapper = dict(optimizer=dict(lr=5e-4))
param_scheduler = dict(type='MultiStepLR', by_epoch=False, milestones=[200], gamma=0.5)

default_hooks = dict(
    logger=dict(interval=20),
    checkpoint=dict(interval=100, max_keep_ckpts=2, out_dir=None, save_best='Set5/PSNR', rule='greater'))
custom_hooks = []
log_processor = dict(window_size=20)
randomness = dict(seed=0)
