# PANet colour image denoising, AWGN sigma = 10 (PANet paper, Table "color image denoising"; one model per sigma).
# Network, loss, optimiser and schedule: ./_base_/panet_restoration.py (64 channels, 80 ResBlocks, attention
# C=64 r=2; L1; Adam 1e-4 halved every 200k; 1M iterations; batch 16 of 48x48 DIV2K patches, flips + transpose).
# Degradation: additive white Gaussian noise of standard deviation sigma on the 0-255 scale, independent per
# RGB channel. Training adds fresh noise to every patch (mmagic's RandomNoise, clipped to [0, 255]).
# Evaluation: Kodak24, CBSD68, McMaster (18 images), Urban100; RGB PSNR / SSIM without border crop. The noisy
# inputs are read from data/{SET}/noisy_sigma10, written once (8-bit PNG, per-image seeds) by
#   python tools/prepare_testsets.py --kodak24 DIR --cbsd68 DIR --mcmaster DIR --urban100 DIR
# Without those files, evaluate with `test_pipeline_on_the_fly` and data_prefix=dict(gt='GT'): the same seeded
# noise (SeededGaussianNoise, base seed 0) added on the fly, identical pixels to the prepared files.
# Training data: python tools/prepare_div2k.py --div2k data/DIV2K (demo: configs/demo/panet_dn_sigma30_demo.py).
_base_ = ['./_base_/panet_restoration.py']

sigma = 10
experiment_name = f'panet_dn_sigma{sigma}_div2k'
work_dir = f'./work_dirs/{experiment_name}'

train_pipeline = [_base_.load_gt] + _base_.random_patch + [
    _base_.copy_gt_to_img,
    dict(type='RandomNoise', keys=['img'],
         params=dict(noise_type=['gaussian'], noise_prob=[1.0], gaussian_sigma=[sigma, sigma],
                     gaussian_gray_noise_prob=0)),
    dict(type='Clip', keys=['img'], a_min=0, a_max=255),
    dict(type='PackInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))

# test inputs: the fixed noisy images of tools/prepare_testsets.py
test_pipeline = [_base_.load_img, _base_.load_gt, dict(type='PackInputs')]
# fallback without prepared inputs: the same seeded noise on the fly (use with data_prefix=dict(gt='GT'))
test_pipeline_on_the_fly = [
    _base_.load_gt, _base_.copy_gt_to_img,
    dict(type='SeededGaussianNoise', keys=['img'], sigma=sigma, seed=0),
    dict(type='PackInputs'),
]
# MultiTestLoop reports every set of the paper's table; the first is also the validation set.
test_sets = ['Kodak24', 'CBSD68', 'McMaster', 'Urban100']


def test_loader(name):
    return dict(
        num_workers=2,
        persistent_workers=False,
        drop_last=False,
        sampler=dict(type='DefaultSampler', shuffle=False),
        dataset=dict(
            type='CheckedImageDataset',
            prepare_cmd=f'python tools/prepare_testsets.py --{name.lower()} PATH/TO/{name} '
            '(README "Preparing the restoration test sets")',
            metainfo=dict(dataset_type=name.lower(), task_name='denoising'),
            data_root=f'{_base_.data_root}/{name}',
            data_prefix=dict(img=f'noisy_sigma{sigma}', gt='GT'),
            pipeline=test_pipeline))


def rgb_metrics(name):
    return dict(type='Evaluator', metrics=[
        dict(type='PSNR', crop_border=0, prefix=name),
        dict(type='SSIM', crop_border=0, prefix=name),
    ])


test_dataloader = [test_loader(name) for name in test_sets]
test_evaluator = [rgb_metrics(name) for name in test_sets]
val_dataloader = test_loader(test_sets[0])
val_evaluator = rgb_metrics(test_sets[0])
default_hooks = dict(checkpoint=dict(save_best=f'{test_sets[0]}/PSNR', rule='greater'))

# MMagicInferencer / tools/restore.py: the input file is the noisy photo itself
inference_pipeline = [_base_.load_img, dict(type='PackInputs')]
