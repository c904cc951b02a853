# PANet colour image denoising (PANet paper, Table "color image denoising"): what the four models, one per noise
# level sigma in {10, 30, 50, 70} (../panet_dn_sigma{10,30,50,70}_div2k.py), share.
# Network, loss, optimiser and schedule: ./panet_restoration.py (64 channels, 80 ResBlocks, attention C=64 r=2; L1;
# Adam 1e-4 halved every 200k; 1M iterations; batch 16 of 48x48 DIV2K patches, flips + transpose).
# Degradation: additive white Gaussian noise of standard deviation sigma on the 0-255 scale, independent per
# RGB channel. Training adds fresh noise to every patch (mmagic's RandomNoise, clipped to [0, 255]).
# Evaluation: Kodak24, CBSD68, McMaster (18 images), Urban100; RGB PSNR / SSIM without border crop. The noisy
# inputs are read from data/{SET}/noisy_sigma{sigma}, written once (8-bit PNG, per-image seeds) by
#   python tools/dataset_converters/prepare_testsets.py --kodak24 DIR --cbsd68 DIR --mcmaster DIR --urban100 DIR
# Without those files, evaluate with `test_pipeline_on_the_fly` and data_prefix=dict(gt='GT'): the same seeded
# noise (SeededGaussianNoise, base seed 0) added on the fly, identical pixels to the prepared files.
# Training data: python tools/dataset_converters/prepare_div2k.py --div2k data/DIV2K
# Validation: DIV2K 801-810 (centre crops, see ./panet_restoration.py) with the same seeded noise on the fly, RGB
# PSNR / SSIM without border crop: python tools/dataset_converters/prepare_div2k.py --no-div2k --valid DIR
# (demo: ../demo/panet_dn_sigma30_demo.py).
#
# sigma: each model config sets it and builds what carries it: train_pipeline (and train_dataloader's),
# test_pipeline_on_the_fly (also the validation pipeline), the test loaders' input folder, experiment_name and
# work_dir. They are not
# built here because mmengine evaluates this file on its own, before the model config: a value computed here from
# a variable keeps this file's value even where a child sets the variable again. sigma is None here, so a loader
# that a model config forgot to rebuild reads noisy_sigmaNone and stops with the prepare command.
_base_ = ['./panet_restoration.py']

sigma = None  # set by each model config

# test inputs: the fixed noisy images of tools/dataset_converters/prepare_testsets.py
test_pipeline = [_base_.load_img, _base_.load_gt, dict(type='PackInputs')]
# MultiTestLoop reports every set of the paper's table.
test_sets = ['Kodak24', 'CBSD68', 'McMaster', 'Urban100']


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
            metainfo=dict(dataset_type=name.lower(), task_name='denoising'),
            data_root=f'{_base_.data_root}/{name}',
            data_prefix=dict(img=f'noisy_sigma{sigma}', gt='GT'),  # the model config sets its sigma's folder
            pipeline=test_pipeline))


def rgb_metrics(name):
    return dict(type='Evaluator', metrics=[
        dict(type='PSNR', crop_border=0, prefix=name),
        dict(type='SSIM', crop_border=0, prefix=name),
    ])


test_dataloader = [test_loader(name) for name in test_sets]
test_evaluator = [rgb_metrics(name) for name in test_sets]
# validation: DIV2K 801-810 (./panet_restoration.py), the model config's test_pipeline_on_the_fly
val_dataloader = dict(dataset=dict(metainfo=dict(task_name='denoising')))
val_evaluator = rgb_metrics('DIV2K')

# MMagicInferencer / tools/restore.py: the input file is the noisy photo itself
inference_pipeline = [_base_.load_img, dict(type='PackInputs')]
