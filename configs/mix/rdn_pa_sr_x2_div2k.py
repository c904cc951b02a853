# RDN x2 with pyramid attention: mmagic's own RDN recipe (64 channels, 16 residual dense blocks,
# L1, DIV2K sub-images, HR 64x64 patches, batch 16, Adam 1e-4 halved every 200k, 1M iterations)
# with one pyramid attention block after the 8th RDB (rdbs.7). Its output feeds both the next RDB
# and RDN's global feature fusion. All RDB features are at LR resolution.
_base_ = 'mmagic::rdn/rdn_x2c64b16_1xb16-1000k_div2k.py'
custom_imports = dict(imports=['panet_mm'], allow_failed_imports=False)

experiment_name = 'rdn_pa_sr_x2_div2k'
work_dir = f'./work_dirs/{experiment_name}'
# validation metrics logged at the iteration (mmagic's runtime logs them at the epoch, 0 in iteration runs)
default_hooks = dict(logger=dict(log_metric_by_epoch=False))

model = dict(
    generator=dict(
        _delete_=True,
        type='WithPyramidAttention',
        generator=_base_.model.generator,  # mmagic's RDNNet config, unchanged
        insert=[dict(after='rdbs.7')],
        attention_cfg=dict(reduction=2, res_scale=1.0)))

# Data, prepared by panet_mm's tools (CheckedImageDataset: a missing folder names the command):
#   training: python tools/dataset_converters/prepare_div2k.py --div2k data/DIV2K   (mmagic's DIV2K layout)
#   val/test: python tools/dataset_converters/prepare_testsets.py --set5 DIR --set14 DIR --b100 DIR --urban100 DIR \
#                 --manga109 DIR   (data/{SET}/GTmod12 and LRbicx2, mmagic's layout)
# Evaluation follows the PANet paper, not mmagic's RDN config: PSNR / SSIM on the Y channel (MATLAB BT.601)
# with crop_border = scale, on the paper's SR test sets. The paper's scores (PA-EDSR 38.33 dB on Set5) are Y;
# mmagic's 35.99 dB for this RDN recipe is RGB (convert_to=None), about 2 dB lower and not comparable.
# mmagic's third test set, DIV2K validation crops (meta_info_DIV2K100sub_GT.txt), is not in the paper's table
# and no panet_mm tool makes it.
scale = 2
train_dataloader = dict(
    dataset=dict(
        type='CheckedImageDataset',
        prepare_cmd='python tools/dataset_converters/prepare_div2k.py --div2k data/DIV2K '
        '(README "Preparing DIV2K and Set5")'))
val_dataloader = dict(
    dataset=dict(
        type='CheckedImageDataset',
        prepare_cmd='python tools/dataset_converters/prepare_testsets.py --set5 PATH/TO/Set5/HR '
        '(README "Preparing the restoration test sets")'))
val_evaluator = dict(_delete_=True, type='Evaluator', metrics=[
    dict(type='PSNR', crop_border=scale, convert_to='Y', prefix='Set5'),
    dict(type='SSIM', crop_border=scale, convert_to='Y', prefix='Set5'),
])


def sr_test_loader(name):  # (functions are not config keys: mmengine drops them)
    return dict(
        num_workers=4,
        persistent_workers=False,
        drop_last=False,
        sampler=dict(type='DefaultSampler', shuffle=False),
        dataset=dict(
            type='CheckedImageDataset',
            prepare_cmd=f'python tools/dataset_converters/prepare_testsets.py --{name.lower()} PATH/TO/{name}/HR '
            '(README "Preparing the restoration test sets")',
            metainfo=dict(dataset_type=name.lower(), task_name='sisr'),
            data_root=f'data/{name}',
            data_prefix=dict(img=f'LRbicx{scale}', gt='GTmod12'),
            pipeline=_base_.test_pipeline))


def sr_y_metrics(name):
    return dict(type='Evaluator', metrics=[
        dict(type='PSNR', crop_border=scale, convert_to='Y', prefix=name),
        dict(type='SSIM', crop_border=scale, convert_to='Y', prefix=name),
    ])


test_dataloader = [sr_test_loader(name) for name in ('Set5', 'Set14', 'B100', 'Urban100', 'Manga109')]
test_evaluator = [sr_y_metrics(name) for name in ('Set5', 'Set14', 'B100', 'Urban100', 'Manga109')]

# Checkpoints inside the run's work_dir (mmagic's out_dir='./work_dirs/' put them under ./work_dirs/<name>/
# whatever --work-dir said); the best one by the Y PSNR on Set5.
default_hooks = dict(checkpoint=dict(out_dir=None, save_best='Set5/PSNR', rule='greater'))
