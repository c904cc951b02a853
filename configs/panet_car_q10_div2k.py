# PANet JPEG compression artifact reduction, quality 10 (PANet paper, Table "JPEG artifact reduction"; one model per
# quality), on the grey / Y channel. Paper: PSNR / SSIM 29.69 / .8250 on LIVE1, 30.03 / .8195 on Classic5.
# Shared by the four qualities (DIV2K training data, grey / Y loading, the test sets LIVE1, Classic5 and their
# metrics, the 1-channel network, schedule): ./_base_/panet_car_div2k.py. Here: the quality and what carries it,
# rebuilt in this file because mmengine evaluates the base before it (the base's pipelines and loaders cannot see
# this quality).
_base_ = ['./_base_/panet_car_div2k.py']

quality = 10
experiment_name = f'panet_car_q{quality}_div2k'
work_dir = f'./work_dirs/{experiment_name}'

# training: every clean grey / Y patch JPEG-compressed at exactly this quality (OpenCV's encoder)
train_pipeline = _base_.load_gray_gt + _base_.random_patch + [
    _base_.copy_gt_to_img,
    dict(type='RandomJPEGCompression', keys=['img'], params=dict(quality=[quality, quality]),
         color_type='grayscale'),
    dict(type='PackInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
# test: the prepared JPEG inputs data/{SET}/jpeg_q10
test_dataloader = [dict(loader, dataset=dict(loader.dataset, data_prefix=dict(img=f'jpeg_q{quality}', gt='GT_gray')))
                   for loader in _base_.test_dataloader]
# without them: the same compression on the fly (use with data_prefix=dict(gt='GT_gray'))
test_pipeline_on_the_fly = _base_.load_gray_gt + [
    _base_.copy_gt_to_img,
    dict(type='JPEGCompression', keys=['img'], quality=quality),
    dict(type='PackInputs'),
]
# validation (DIV2K 801-810, _base_/panet_restoration.py): compressed on the fly, as the test sets' inputs are
val_dataloader = dict(dataset=dict(pipeline=test_pipeline_on_the_fly))
