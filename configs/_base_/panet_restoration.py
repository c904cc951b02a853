# PANet (Mei et al. 2020) for image restoration: what the denoising, demosaicing and JPEG artifact
# reduction configs share. The network and the released training recipe:
# - PANet: conv3x3 head (64 channels), 80 ResBlocks (PReLU) with the pyramid attention after block 40
#   (C=64, reduction r=2, 5 levels at scales 1.0-0.6, softmax scale 10), conv3x3, long skip, conv3x3 tail;
#   no mean shift, no image-level residual; 0-255 internal range (rgb_range=255; the released models ran on
#   0-1 data, and tools/model_converters/convert_official_ckpt.py rescales them to this exactly).
# - L1 loss; Adam(0.9, 0.999), eps 1e-8, lr 1e-4 halved at 200k/400k/600k/800k; 1M iterations; batch 16.
# - Training data: DIV2K 1-800 HR sub-images (python tools/dataset_converters/prepare_div2k.py), random 48x48
#   patches of the clean image with h-flip, v-flip and transpose; each task config degrades a copy of the patch
#   on the fly.
# - Evaluation: mmagic's MultiTestLoop; each task config lists the test sets of the paper's table
#   (tools/dataset_converters/prepare_testsets.py writes their fixed degraded inputs).
# - Validation (MultiValLoop, every 5000 iterations; the best checkpoint is kept by 'DIV2K/PSNR'): DIV2K 801-810,
#   as the released code (--data_range 1-800/801-810), never a test set, whose scores would then have chosen the
#   checkpoint they report. Each task config degrades the clean image on the fly, as its test sets' inputs are made
#   (its test_pipeline_on_the_fly: seeded noise, JPEG at the quality, the mosaic), and scores it with its test
#   protocol. Prepared once by
#     python tools/dataset_converters/prepare_div2k.py --no-div2k --valid PATH/TO/DIV2K_valid_HR
#   as data/DIV2K/valid/GTmod12/0801.png ... 0810.png: the centre 288x288 of each image (--valid-crop 288).
#   Why crops: the released code validated whole 2K images, but always chopped into ~80x80 tiles (--chop), so its
#   attention was tile-local; these configs run the model once on the whole image (global attention, memory-linear
#   but compute quadratic in pixels). On the whole 2040x~1356 images one validation would cost about 2e17 MACs
#   (30x the 5000 training iterations between two validations; days on a CPU); on 288x288 crops about 2e14 (~3%;
#   minutes on a GPU). Ten crops are still 830k pixels, more than Set5. The released protocol: prepare with
#   --valid-crop 0 and set model.test_cfg=dict(chop=dict(min_size=6800, shave=10)) (it also tiles the tests).
_base_ = ['./schedules/panet_1m_div2k.py']

data_root = 'data'

model = dict(
    # mmagic's BaseEditModel plus test-time options; default: the whole image in one pass.
    # The released protocol tiles instead: test_cfg=dict(chop=dict(min_size=6800, shave=10)) for
    # denoising (6400 for the other tasks); see PANetEditModel.
    type='PANetEditModel',
    generator=dict(
        type='PANet',
        in_channels=3,  # 1 for the grey / Y JPEG models
        out_channels=3,
        mid_channels=64,
        num_blocks=80,
        res_scale=1.0,
        rgb_range=255,
        attention_cfg=dict(reduction=2, levels=5, softmax_scale=10, res_scale=1.0)),
    pixel_loss=dict(type='L1Loss', loss_weight=1.0, reduction='mean'),
    train_cfg=dict(),
    test_cfg=dict(),
    data_preprocessor=dict(type='DataPreprocessor', mean=[0., 0., 0.], std=[255., 255., 255.]))

# Pipeline pieces the task configs assemble (each task config spells out its own pipelines).
load_gt = dict(type='LoadImageFromFile', key='gt', color_type='color', channel_order='rgb', imdecode_backend='cv2')
load_img = dict(type='LoadImageFromFile', key='img', color_type='color', channel_order='rgb', imdecode_backend='cv2')
patch_size = 48
# a random clean patch with the paper's augmentation; the degradation comes after it
random_patch = [
    dict(type='Crop', keys=['gt'], crop_size=(patch_size, patch_size), random_crop=True),
    dict(type='Flip', keys=['gt'], flip_ratio=0.5, direction='horizontal'),
    dict(type='Flip', keys=['gt'], flip_ratio=0.5, direction='vertical'),
    dict(type='RandomTransposeHW', keys=['gt'], transpose_ratio=0.5),
]
# the input starts as a copy of the clean image, with its channel order and colour type (which mmagic's
# DataPreprocessor reads to put the prediction into the ground truth's channel order for the metrics)
copy_gt_to_img = dict(
    type='CopyValues',
    src_keys=['gt', 'gt_channel_order', 'gt_color_type'],
    dst_keys=['img', 'img_channel_order', 'img_color_type'])

train_dataloader = dict(
    num_workers=8,
    batch_size=16,
    drop_last=True,
    persistent_workers=False,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type='CheckedImageDataset',
        prepare_cmd='python tools/dataset_converters/prepare_div2k.py --div2k data/DIV2K '
        '(README "Preparing DIV2K and Set5"; '
        'only the HR sub-images are read)',
        ann_file='meta_info_DIV2K800sub_GT.txt',
        metainfo=dict(dataset_type='div2k', task_name='restoration'),
        data_root=data_root + '/DIV2K',
        data_prefix=dict(gt='DIV2K_train_HR_sub'),
        pipeline=[]))  # set by each task config

# The validation set; each task config sets the pipeline (its degradation) and the evaluator ('DIV2K' prefix).
val_dataloader = dict(
    num_workers=2,
    persistent_workers=False,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type='CheckedImageDataset',
        prepare_cmd='python tools/dataset_converters/prepare_div2k.py --no-div2k --valid PATH/TO/DIV2K_valid_HR '
        '(README "Preparing DIV2K and Set5")',
        metainfo=dict(dataset_type='div2k_valid', task_name='restoration'),
        data_root=data_root + '/DIV2K/valid',
        data_prefix=dict(gt='GTmod12'),
        pipeline=[]))  # set by each model config

# schedule (Adam, lr 1e-4 halved every 200k, 1M iterations, batch 16; best checkpoint by 'DIV2K/PSNR'):
# _base_/schedules/panet_1m_div2k.py
