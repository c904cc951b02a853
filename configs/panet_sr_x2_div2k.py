# PA-EDSR x2 (PANet paper, super-resolution): EDSR (256 channels, 32 ResBlocks, res_scale 0.1) with
# pyramid attention (C=256, r=8, res_scale 0.1) after block 16. Released recipe: DIV2K 1-800 sub-images,
# LR patches 48x48 (HR 96), h/v flips and transposes, batch 16, L1, Adam(0.9, 0.999) lr 1e-4 halved at
# 200k/400k/600k/800k, 1M iterations. Validation: DIV2K 801-810 (the released --data_range 1-800/801-810, never
# a test set); test: Set5, Set14, B100, Urban100, Manga109; Y-channel PSNR/SSIM with crop = scale.
# Data: python tools/dataset_converters/prepare_div2k.py --div2k data/DIV2K --valid PATH/TO/DIV2K_valid_HR
# (demo: tools/dataset_converters/make_demo_data.py).
_base_ = ['./_base_/schedules/panet_1m_div2k.py', './_base_/datasets/sr_testsets.py']

scale = 2
experiment_name = 'panet_sr_x2_div2k'
work_dir = f'./work_dirs/{experiment_name}'

model = dict(
    # mmagic's BaseEditModel plus test-time options; default: the whole image in one pass.
    # The released protocol tiles instead: test_cfg=dict(chop=dict(min_size=6400, shave=10)).
    type='PANetEditModel',
    generator=dict(
        type='PAEDSRNet',
        in_channels=3,
        out_channels=3,
        mid_channels=256,
        num_blocks=32,
        upscale_factor=scale,
        res_scale=0.1,
        rgb_range=255,
        rgb_mean=[0.4488, 0.4371, 0.4040],
        rgb_std=[1.0, 1.0, 1.0],
        attention_cfg=dict(reduction=8, levels=5, softmax_scale=10, res_scale=0.1)),
    pixel_loss=dict(type='L1Loss', loss_weight=1.0, reduction='mean'),
    train_cfg=dict(),
    test_cfg=dict(),
    data_preprocessor=dict(type='DataPreprocessor', mean=[0., 0., 0.], std=[255., 255., 255.]))

load_pair = [
    dict(type='LoadImageFromFile', key='img', color_type='color', channel_order='rgb', imdecode_backend='cv2'),
    dict(type='LoadImageFromFile', key='gt', color_type='color', channel_order='rgb', imdecode_backend='cv2'),
]
train_pipeline = load_pair + [
    dict(type='SetValues', dictionary=dict(scale=scale)),
    dict(type='PairedRandomCrop', gt_patch_size=48 * scale),
    dict(type='Flip', keys=['img', 'gt'], flip_ratio=0.5, direction='horizontal'),
    dict(type='Flip', keys=['img', 'gt'], flip_ratio=0.5, direction='vertical'),
    dict(type='RandomTransposeHW', keys=['img', 'gt'], transpose_ratio=0.5),
    dict(type='PackInputs'),
]
val_pipeline = load_pair + [dict(type='PackInputs')]
# The LR image alone, loaded as in validation: what mmagic's inferencers and tools/restore.py read.
inference_pipeline = [load_pair[0], dict(type='PackInputs')]

data_root = 'data'
train_dataloader = dict(
    num_workers=8,
    batch_size=16,
    drop_last=True,
    persistent_workers=False,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type='CheckedImageDataset',
        prepare_cmd='python tools/dataset_converters/prepare_div2k.py --div2k data/DIV2K '
        '(README "Preparing DIV2K and Set5")',
        ann_file='meta_info_DIV2K800sub_GT.txt',
        metainfo=dict(dataset_type='div2k', task_name='sisr'),
        data_root=data_root + '/DIV2K',
        data_prefix=dict(img=f'DIV2K_train_LR_bicubic/X{scale}_sub', gt='DIV2K_train_HR_sub'),
        filename_tmpl=dict(img='{}', gt='{}'),
        pipeline=train_pipeline))

val_dataloader = dict(
    num_workers=2,
    persistent_workers=False,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type='CheckedImageDataset',
        prepare_cmd='python tools/dataset_converters/prepare_div2k.py --no-div2k --valid PATH/TO/DIV2K_valid_HR '
        '(README "Preparing DIV2K and Set5")',
        metainfo=dict(dataset_type='div2k_valid', task_name='sisr'),
        data_root=data_root + '/DIV2K/valid',
        data_prefix=dict(img=f'LRbicx{scale}', gt='GTmod12'),
        pipeline=val_pipeline))
# Validation: DIV2K 801-810, the centre 288x288 (HR) of each image and its bicubic LR (prepare_div2k.py --valid,
# --valid-crop 288). The released code validated whole images, chopped into ~80x80 LR tiles (tile-local attention);
# this config runs the model once on the whole input (global attention, compute quadratic in pixels): on the whole
# x2 inputs (1020x~678) one validation would cost about 4e16 MACs, more than the 5000 training iterations between two
# validations (x3 ~25%, x4 ~8%); on the crops about 5e13 (<1%). Released protocol: --valid-crop 0 and
# model.test_cfg=dict(chop=dict(min_size=6400, shave=10)) (which also tiles the tests).
val_evaluator = dict(
    type='Evaluator',
    metrics=[
        dict(type='PSNR', crop_border=scale, convert_to='Y', prefix='DIV2K'),
        dict(type='SSIM', crop_border=scale, convert_to='Y', prefix='DIV2K'),
    ])
# test_dataloader / test_evaluator: every test set of the paper's table (Set5, Set14, B100, Urban100,
# Manga109) at x2, from _base_/datasets/sr_testsets.py

# schedule (Adam, lr 1e-4 halved every 200k, 1M iterations, batch 16; best checkpoint by 'DIV2K/PSNR'):
# _base_/schedules/panet_1m_div2k.py
