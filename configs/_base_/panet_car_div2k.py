# PANet JPEG compression artifact reduction (PANet paper, Table "JPEG artifact reduction"): what the four models, one
# per JPEG quality in {10, 20, 30, 40} (../panet_car_q{10,20,30,40}_div2k.py), share. They work on the grey / Y
# channel: the network has 1 input and 1 output channel.
# Network, loss, optimiser and schedule: ./panet_restoration.py (64 channels, 80 ResBlocks, attention C=64 r=2; L1;
# Adam 1e-4 halved every 200k; 1M iterations; batch 16 of 48x48 DIV2K patches, flips + transpose).
# Channel: grey images stay grey, colour images become MATLAB's BT.601 Y (GrayOrY: rgb2ycbcr, 16-235 range).
# Degradation: JPEG at exactly the model's quality, OpenCV's encoder (cv2.imencode, IMWRITE_JPEG_QUALITY) of the
# grey image. Training compresses every patch on the fly (mmagic's RandomJPEGCompression at the fixed quality).
# Evaluation: LIVE1, Classic5; grey / Y PSNR / SSIM without border crop. The inputs are read from
# data/{SET}/jpeg_q{quality} and the ground truth from data/{SET}/GT_gray, written once by
#   python tools/dataset_converters/prepare_testsets.py --live1 DIR --classic5 DIR
# Without the jpeg_q{quality} files, evaluate with `test_pipeline_on_the_fly` and data_prefix=dict(gt='GT_gray'):
# the same compression on the fly (JPEGCompression), identical pixels to the prepared files.
# Training data: python tools/dataset_converters/prepare_div2k.py --div2k data/DIV2K
# Validation: DIV2K 801-810 (centre crops, see ./panet_restoration.py) as Y, compressed on the fly at the quality,
# Y PSNR / SSIM without border crop: python tools/dataset_converters/prepare_div2k.py --no-div2k --valid DIR
# (demo, q10: ../demo/panet_car_q10_demo.py).
#
# quality: each model config sets it and builds what carries it: train_pipeline (and train_dataloader's),
# test_pipeline_on_the_fly (also the validation pipeline), the test loaders' input folder, experiment_name and
# work_dir. They are not
# built here because mmengine evaluates this file on its own, before the model config: a value computed here from
# a variable keeps this file's value even where a child sets the variable again. quality is None here, so a loader
# that a model config forgot to rebuild reads jpeg_qNone and stops with the prepare command.
_base_ = ['./panet_restoration.py']

quality = None  # set by each model config

model = dict(
    generator=dict(in_channels=1, out_channels=1),
    data_preprocessor=dict(mean=[0.], std=[255.]))

# load as colour (RGB), then grey images stay grey and colour ones become Y: (H, W, 1) uint8
load_gray_gt = [_base_.load_gt, dict(type='GrayOrY', keys=['gt'])]
load_gray_img = [_base_.load_img, dict(type='GrayOrY', keys=['img'])]

# test inputs: the fixed JPEG images of tools/dataset_converters/prepare_testsets.py (decoded, stored as grey PNG)
test_pipeline = load_gray_img + load_gray_gt + [dict(type='PackInputs')]
# MultiTestLoop reports every set of the paper's table.
test_sets = ['LIVE1', 'Classic5']


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
            metainfo=dict(dataset_type=name.lower(), task_name='jpeg_artifact_reduction'),
            data_root=f'{_base_.data_root}/{name}',
            data_prefix=dict(img=f'jpeg_q{quality}', gt='GT_gray'),  # the model config sets its quality's folder
            pipeline=test_pipeline))


def gray_metrics(name):
    # the images are already one channel (grey / Y): no conversion, no border crop
    return dict(type='Evaluator', metrics=[
        dict(type='PSNR', crop_border=0, convert_to=None, prefix=name),
        dict(type='SSIM', crop_border=0, convert_to=None, prefix=name),
    ])


test_dataloader = [test_loader(name) for name in test_sets]
test_evaluator = [gray_metrics(name) for name in test_sets]
# validation: DIV2K 801-810 (./panet_restoration.py), the model config's test_pipeline_on_the_fly
val_dataloader = dict(dataset=dict(metainfo=dict(task_name='jpeg_artifact_reduction')))
val_evaluator = gray_metrics('DIV2K')

# MMagicInferencer / tools/restore.py: the input is the JPEG file; the model restores its grey / Y channel
inference_pipeline = load_gray_img + [dict(type='PackInputs')]
