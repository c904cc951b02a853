# Super-resolution test sets of the PANet paper's table at x2: Set5, Set14, B100, Urban100, Manga109
# (as mmagic's _base_/datasets/sisr_x2_test_config.py, the config keys themselves: test_dataloader and
# test_evaluator, nothing else, so that a run's logged config carries only the test sets it uses).
# Each set is read from data/{SET}/LRbicx{scale} (input) and data/{SET}/GTmod12 (ground truth), written by
#   python tools/dataset_converters/prepare_testsets.py --set5 DIR --set14 DIR --b100 DIR --urban100 DIR --manga109 DIR
# The paper's tables scored the released test data instead: HR cropped to a multiple of the scale only
# (data/{SET}/GTmod{scale}) and its bicubic LR (data/{SET}/LRbicx{scale}_GTmod{scale}), written by the same tool with
# --sr-crop scale. Score on them with --cfg-options sr_test_crop=scale (or sr_test_crop = 'scale' in a config):
# the test sets below are pointed there when the config is read (panet_mm.engine.cli.use_sr_test_crop).
# Metrics: Y-channel (MATLAB BT.601) PSNR / SSIM with crop_border = scale, prefixed by the set name
# ('Set5/PSNR', 'Set14/PSNR', ...), so that `tools/test.py CONFIG CKPT` reports every column of the table.
# Another scale: a config that inherits these lists rewrites the LR folder and the crop, e.g. at x3
# (panet_sr_x3_div2k.py):
#   test_dataloader = [dict(d, dataset=dict(d.dataset, data_prefix=dict(img=f'LRbicx{scale}', gt='GTmod12')))
#                      for d in _base_.test_dataloader]
#   test_evaluator = [dict(e, metrics=[dict(m, crop_border=scale) for m in e.metrics]) for e in _base_.test_evaluator]


def sr_test_loader(name, scale):  # (functions are not config keys: mmengine drops them)
    return dict(
        num_workers=2,
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
            pipeline=[
                dict(type='LoadImageFromFile', key='img', color_type='color', channel_order='rgb',
                     imdecode_backend='cv2'),
                dict(type='LoadImageFromFile', key='gt', color_type='color', channel_order='rgb',
                     imdecode_backend='cv2'),
                dict(type='PackInputs'),
            ]))


def sr_y_metrics(name, scale):
    return dict(type='Evaluator', metrics=[
        dict(type='PSNR', crop_border=scale, convert_to='Y', prefix=name),
        dict(type='SSIM', crop_border=scale, convert_to='Y', prefix=name),
    ])


test_dataloader = [sr_test_loader(name, 2) for name in ('Set5', 'Set14', 'B100', 'Urban100', 'Manga109')]
test_evaluator = [sr_y_metrics(name, 2) for name in ('Set5', 'Set14', 'B100', 'Urban100', 'Manga109')]
# '12': GTmod12 and LRbicx{scale} as above (mmagic's / BasicSR's layout); 'scale': the paper's test data
sr_test_crop = '12'
