# The released PANet / PA-EDSR training schedule, shared by every paper config: L1 loss (in each model), batch 16,
# Adam(0.9, 0.999), eps 1e-8, lr 1e-4 halved at 200k/400k/600k/800k, 1M iterations; validation on DIV2K 801-810
# every 5000 iterations (mmagic's MultiValLoop), the best checkpoint kept by its PSNR; tests with MultiTestLoop.
_base_ = ['../default_runtime.py']

train_cfg = dict(type='IterBasedTrainLoop', max_iters=1000000, val_interval=5000)
val_cfg = dict(type='MultiValLoop')
test_cfg = dict(type='MultiTestLoop')

optim_wrapper = dict(
    constructor='DefaultOptimWrapperConstructor',
    type='OptimWrapper',
    optimizer=dict(type='Adam', lr=1e-4, betas=(0.9, 0.999), eps=1e-8))
param_scheduler = dict(
    type='MultiStepLR', by_epoch=False, milestones=[200000, 400000, 600000, 800000], gamma=0.5)

# the best checkpoint: the validation set's PSNR (mmagic's metrics prefix their names: 'DIV2K/PSNR')
default_hooks = dict(checkpoint=dict(interval=5000, save_best='DIV2K/PSNR', rule='greater'))
# Total batch 16 as in the paper; with --auto-scale-lr the lr follows the real total batch size.
auto_scale_lr = dict(enable=False, base_batch_size=16)
