# Super-resolution test sets of the PANet paper's table: Set5, Set14, B100, Urban100, Manga109, at x2, x3 and x4.
# Each set is read from data/{SET}/LRbicx{scale} (input) and data/{SET}/GTmod12 (ground truth), written by
#   python tools/prepare_testsets.py --set5 DIR --set14 DIR --b100 DIR --urban100 DIR --manga109 DIR
# Metrics: Y-channel (MATLAB BT.601) PSNR / SSIM with crop_border = scale, prefixed by the set name
# ('Set5/PSNR', 'Set14/PSNR', ...), so `tools/test.py CONFIG CKPT` reports every column of the table.
# Use: add this file to an SR config's _base_ list, then (for scale N)
#   test_dataloader = _base_.sr_xN_test_dataloader
#   test_evaluator = _base_.sr_xN_test_evaluator
# Every name defined here carries the scale, so a config of another scale that inherits an SR config finds
# its own lists in the same _base_ chain.


def sr_test_loader(name, scale):
    return dict(
        num_workers=2,
        persistent_workers=False,
        drop_last=False,
        sampler=dict(type='DefaultSampler', shuffle=False),
        dataset=dict(
            type='CheckedImageDataset',
            prepare_cmd=f'python tools/prepare_testsets.py --{name.lower()} PATH/TO/{name}/HR '
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


sr_sets = ['Set5', 'Set14', 'B100', 'Urban100', 'Manga109']
sr_x2_test_dataloader = [sr_test_loader(name, 2) for name in sr_sets]
sr_x2_test_evaluator = [sr_y_metrics(name, 2) for name in sr_sets]
sr_x3_test_dataloader = [sr_test_loader(name, 3) for name in sr_sets]
sr_x3_test_evaluator = [sr_y_metrics(name, 3) for name in sr_sets]
sr_x4_test_dataloader = [sr_test_loader(name, 4) for name in sr_sets]
sr_x4_test_evaluator = [sr_y_metrics(name, 4) for name in sr_sets]
