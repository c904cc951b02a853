# PANet colour image denoising, AWGN sigma = 70 (PANet paper, Table "color image denoising"; one model per sigma).
# Paper: PSNR 28.20 / 26.89 / 27.87 dB on Kodak24 / CBSD68 / Urban100.
# Shared by the four sigmas (DIV2K training data, the test sets Kodak24, CBSD68, McMaster, Urban100 and their RGB
# metrics, network, schedule): ./_base_/panet_dn_div2k.py. Here: sigma and what carries it, rebuilt in this file
# because mmengine evaluates the base before it (the base's pipelines and loaders cannot see this sigma).
_base_ = ['./_base_/panet_dn_div2k.py']

sigma = 70
experiment_name = f'panet_dn_sigma{sigma}_div2k'
work_dir = f'./work_dirs/{experiment_name}'

# training: fresh noise of this sigma on every clean patch, independent per RGB channel, clipped to [0, 255]
train_pipeline = [_base_.load_gt] + _base_.random_patch + [
    _base_.copy_gt_to_img,
    dict(type='RandomNoise', keys=['img'],
         params=dict(noise_type=['gaussian'], noise_prob=[1.0], gaussian_sigma=[sigma, sigma],
                     gaussian_gray_noise_prob=0)),
    dict(type='Clip', keys=['img'], a_min=0, a_max=255),
    dict(type='PackInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
# test: the prepared noisy inputs data/{SET}/noisy_sigma70
test_dataloader = [dict(loader, dataset=dict(loader.dataset, data_prefix=dict(img=f'noisy_sigma{sigma}', gt='GT')))
                   for loader in _base_.test_dataloader]
# without them: the same seeded noise on the fly (use with data_prefix=dict(gt='GT'))
test_pipeline_on_the_fly = [
    _base_.load_gt, _base_.copy_gt_to_img,
    dict(type='SeededGaussianNoise', keys=['img'], sigma=sigma, seed=0),
    dict(type='PackInputs'),
]
# validation (DIV2K 801-810, _base_/panet_restoration.py): the seeded noise on the fly, as the test sets' inputs are
val_dataloader = dict(dataset=dict(pipeline=test_pipeline_on_the_fly))
