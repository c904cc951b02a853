# PANet image demosaicing (PANet paper, Table "image demosaicing"; one model).
# Network, loss, optimiser and schedule: ./_base_/panet_restoration.py (64 channels, 80 ResBlocks, attention
# C=64 r=2; L1; Adam 1e-4 halved every 200k; 1M iterations; batch 16 of 48x48 DIV2K patches, flips + transpose).
# Degradation: the zero-filled 3-channel Bayer mosaic (IRCNN protocol, GRBG: G R / B G from the top-left pixel)
# of the RGB image. Training mosaics each patch after cropping, flipping and transposing it, so the network
# always sees the pattern anchored at its input's top-left pixel, as for the whole test images (BayerMosaic).
# Evaluation: McMaster (18 images), Kodak24, CBSD68, Urban100; RGB PSNR / SSIM without border crop. The mosaics
# are read from data/{SET}/mosaic_grbg, written once by
#   python tools/dataset_converters/prepare_testsets.py --mcmaster DIR --kodak24 DIR --cbsd68 DIR --urban100 DIR
# Without those files, evaluate with `test_pipeline_on_the_fly` and data_prefix=dict(gt='GT') (the mosaic is
# deterministic: identical pixels). Test-time tiling (test_cfg chop / tile) starts every tile at an even offset
# (align=2), or a tile would show the network another phase of the pattern; the default whole-image test needs none.
# Training data: python tools/dataset_converters/prepare_div2k.py --div2k data/DIV2K
# Validation: DIV2K 801-810 (centre crops, see ./_base_/panet_restoration.py) mosaicked on the fly, RGB PSNR / SSIM
# without border crop: python tools/dataset_converters/prepare_div2k.py --no-div2k --valid DIR
# (demo: configs/demo/panet_demosaic_demo.py).
_base_ = ['./_base_/panet_restoration.py']

pattern = 'GRBG'
experiment_name = 'panet_demosaic_div2k'
work_dir = f'./work_dirs/{experiment_name}'

# align=2: chop / tile origins at even offsets (the GRBG phase kept); x8 self_ensemble is then refused (a flip or
# transpose changes the pattern)
model = dict(test_cfg=dict(align=2))

train_pipeline = [_base_.load_gt] + _base_.random_patch + [
    _base_.copy_gt_to_img,
    dict(type='BayerMosaic', keys=['img'], pattern=pattern),  # after every geometric transform
    dict(type='PackInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))

# test inputs: the fixed mosaics of tools/dataset_converters/prepare_testsets.py
test_pipeline = [_base_.load_img, _base_.load_gt, dict(type='PackInputs')]
# fallback without prepared inputs: the same mosaic on the fly (use with data_prefix=dict(gt='GT'))
test_pipeline_on_the_fly = [
    _base_.load_gt, _base_.copy_gt_to_img,
    dict(type='BayerMosaic', keys=['img'], pattern=pattern),
    dict(type='PackInputs'),
]
# MultiTestLoop reports every set of the paper's table (in its order).
test_sets = ['McMaster', 'Kodak24', 'CBSD68', 'Urban100']


def test_loader(name):
    return dict(
        num_workers=2,
        persistent_workers=False,
        drop_last=False,
        sampler=dict(type='DefaultSampler', shuffle=False),
        dataset=dict(
            type='CheckedImageDataset',
            prepare_cmd=f'python tools/dataset_converters/prepare_testsets.py --{name.lower()} PATH/TO/{name} '
            '(README "Preparing the restoration test sets")',
            metainfo=dict(dataset_type=name.lower(), task_name='demosaicing'),
            data_root=f'{_base_.data_root}/{name}',
            data_prefix=dict(img=f'mosaic_{pattern.lower()}', gt='GT'),
            pipeline=test_pipeline))


def rgb_metrics(name):
    return dict(type='Evaluator', metrics=[
        dict(type='PSNR', crop_border=0, prefix=name),
        dict(type='SSIM', crop_border=0, prefix=name),
    ])


test_dataloader = [test_loader(name) for name in test_sets]
test_evaluator = [rgb_metrics(name) for name in test_sets]
# validation: DIV2K 801-810 (_base_/panet_restoration.py), mosaicked on the fly as the test sets' inputs are (the
# crops start on a multiple of 12, and the mosaic is anchored at each crop's top-left pixel, as in training)
val_dataloader = dict(dataset=dict(metainfo=dict(task_name='demosaicing'), pipeline=test_pipeline_on_the_fly))
val_evaluator = rgb_metrics('DIV2K')

# MMagicInferencer / tools/restore.py: the input may be a zero-filled 3-channel GRBG mosaic (mosaicking it again
# changes nothing), a 1-channel raw GRBG Bayer image (read as 3 equal channels, sampled to the same layout) or
# a full RGB photo (mosaicked first, to try the model); tools/restore.py notes which of the last two it did
inference_pipeline = [
    _base_.load_img,
    dict(type='BayerMosaic', keys=['img'], pattern=pattern),
    dict(type='PackInputs'),
]
