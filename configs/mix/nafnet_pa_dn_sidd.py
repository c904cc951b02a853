# NAFNet real-noise denoising (SIDD) with pyramid attention at the bottleneck: mmagic's own NAFNet
# SIDD recipe (width 64, encoder blocks 2-2-4-8, 12 middle blocks, decoder 2-2-2-2, PSNR loss, AdamW
# 1e-3 with cosine decay, 256x256 patches, 400k iterations) with one pyramid attention block in the
# middle of the middle blocks (after middle_blks.5). After four 2x down-samplings the features there
# are 1/16 of the patch side (16x16 for a 256x256 patch) with 1024 channels, so the attention is cheap
# (about 3.3*256^2*(128+1024)*9*2 = 4.5 GFLOPs per patch) while every position sees the whole patch:
# the place to put it in a U-Net.
_base_ = 'mmagic::nafnet/nafnet_c64eb2248mb12db2222_8xb8-lr1e-3-400k_sidd.py'
custom_imports = dict(imports=['panet_mm'], allow_failed_imports=False)

experiment_name = 'nafnet_pa_dn_sidd'
work_dir = f'./work_dirs/{experiment_name}'
# validation metrics logged at the iteration (mmagic's runtime logs them at the epoch, 0 in iteration runs)
default_hooks = dict(logger=dict(log_metric_by_epoch=False))

model = dict(
    generator=dict(
        _delete_=True,
        type='WithPyramidAttention',
        generator=_base_.model.generator,  # mmagic's NAFNet config, unchanged
        insert=[dict(after='middle_blks.5')],
        attention_cfg=dict(reduction=8, res_scale=1.0)))  # 1024 channels: r=8 as PA-EDSR at C=256

# Data: mmagic's SIDD layout (CheckedImageDataset: a missing folder names what to do). No panet_mm tool writes
# it; the SIDD files come from https://www.eecs.yorku.ca/~kamel/sidd/ (SIDD-Medium sRGB for training, the
# sRGB validation blocks ValidationNoisyBlocksSrgb.mat / ValidationGtBlocksSrgb.mat for validation and test).
# Training pairs: data/SIDD/train/noisy/NAME_NOISY.png with data/SIDD/train/gt/NAME_GT.png (crops of the
# SIDD-Medium NOISY_SRGB / GT_SRGB images). Validation / test: data/SIDD/val/{noisy,gt}/val_N_{NOISY,GT}.png,
# written from the .mat files by mmagic's own tool (the command below).
# Metrics stay mmagic's: RGB PSNR / SSIM without border crop, the SIDD benchmark's protocol.
sidd_val_cmd = ("python $(python -c 'import mmagic, os; print(os.path.dirname(mmagic.__file__))')"
                '/.mim/tools/dataset_converters/sidd/preprocess_sidd_test_dataset.py '
                '--data-root DIR_WITH_THE_MAT_FILES --out-dir data/SIDD/val')
train_dataloader = dict(
    dataset=dict(
        type='CheckedImageDataset',
        prepare_cmd='put SIDD-Medium sRGB training pairs (https://www.eecs.yorku.ca/~kamel/sidd/) as '
        'data/SIDD/train/noisy/NAME_NOISY.png and data/SIDD/train/gt/NAME_GT.png'))
val_dataloader = dict(dataset=dict(type='CheckedImageDataset', prepare_cmd=sidd_val_cmd))
test_dataloader = val_dataloader
# Checkpoints inside the run's work_dir (mmagic's out_dir='./work_dirs/' put them under ./work_dirs/<name>/
# whatever --work-dir said).
default_hooks = dict(checkpoint=dict(out_dir=None))
