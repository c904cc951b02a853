# PA-EDSR x4: the x2 recipe (panet_sr_x2_div2k.py) with every scale-dependent setting at x4:
# upsampler, LR folders, HR patch 48*4, DIV2K 801-810 validation (and the test sets) LRbicx4, and crop = 4 in
# the Y-channel metrics.
_base_ = ['./panet_sr_x2_div2k.py']

scale = 4
experiment_name = 'panet_sr_x4_div2k'
work_dir = f'./work_dirs/{experiment_name}'

model = dict(generator=dict(upscale_factor=scale))

train_pipeline = [
    dict(type='LoadImageFromFile', key='img', color_type='color', channel_order='rgb', imdecode_backend='cv2'),
    dict(type='LoadImageFromFile', key='gt', color_type='color', channel_order='rgb', imdecode_backend='cv2'),
    dict(type='SetValues', dictionary=dict(scale=scale)),
    dict(type='PairedRandomCrop', gt_patch_size=48 * scale),
    dict(type='Flip', keys=['img', 'gt'], flip_ratio=0.5, direction='horizontal'),
    dict(type='Flip', keys=['img', 'gt'], flip_ratio=0.5, direction='vertical'),
    dict(type='RandomTransposeHW', keys=['img', 'gt'], transpose_ratio=0.5),
    dict(type='PackInputs'),
]
train_dataloader = dict(dataset=dict(
    data_prefix=dict(img=f'DIV2K_train_LR_bicubic/X{scale}_sub', gt='DIV2K_train_HR_sub'),
    pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(data_prefix=dict(img=f'LRbicx{scale}', gt='GTmod12')))
val_evaluator = dict(metrics=[
    dict(type='PSNR', crop_border=scale, convert_to='Y', prefix='DIV2K'),
    dict(type='SSIM', crop_border=scale, convert_to='Y', prefix='DIV2K'),
])
# the x2 config's test sets (_base_/datasets/sr_testsets.py) at this scale: LR folders and crop
test_dataloader = [dict(d, dataset=dict(d.dataset, data_prefix=dict(img=f'LRbicx{scale}', gt='GTmod12')))
                   for d in _base_.test_dataloader]
test_evaluator = [dict(e, metrics=[dict(m, crop_border=scale) for m in e.metrics]) for e in _base_.test_evaluator]
