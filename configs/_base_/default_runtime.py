# Runtime shared by every panet_mm config: mmagic's scope, the plugin import, hooks and logging.
default_scope = 'mmagic'
custom_imports = dict(imports=['panet_mm'], allow_failed_imports=False)

save_dir = './work_dirs'

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    # validation metrics at the training iteration (mmengine's default, the epoch, stays 0 in these runs)
    logger=dict(type='LoggerHook', interval=100, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(
        type='CheckpointHook',
        interval=5000,
        by_epoch=False,
        max_keep_ckpts=10,
        save_optimizer=True,
        save_best='auto',  # each task config names its prefixed key, e.g. 'Set5/PSNR'
        rule='greater',
    ),
    sampler_seed=dict(type='DistSamplerSeedHook'),
)

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    # tools/train.py switches to gloo (and CPU DDP) when no GPU is present
    dist_cfg=dict(backend='nccl'),
)

log_level = 'INFO'
log_processor = dict(type='LogProcessor', window_size=100, by_epoch=False)

load_from = None
resume = False

# Image grids, one row per sample: LR input | output | ground truth (gt_path names the file), of the first
# 3 images of every validation / test set, under {work_dir}/{timestamp}/vis_data/vis_image/.
vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(
    type='ConcatImageVisualizer',
    vis_backends=vis_backends,
    fn_key='gt_path',
    img_keys=['input', 'pred_img', 'gt_img'],
    bgr2rgb=True)
# True (or --cfg-options tensorboard=True): panet_mm's tools also log the scalars and the grids to
# TensorBoard (TensorboardVisBackend, under {work_dir}/{timestamp}/vis_data/); pip install panet_mm[tensorboard]
tensorboard = False
# panet_mm's tools add the last two to every run; listed here for other launchers (e.g. mmagic's tools):
# checkpoints that load weights-only (torch >= 2.6), and a stop at the first NaN / infinite loss.
custom_hooks = [
    dict(type='FirstSamplesVisualizationHook', num_samples=3),
    dict(type='WeightsOnlyCheckpointHook'),
    dict(type='NonFiniteLossHook'),
]
