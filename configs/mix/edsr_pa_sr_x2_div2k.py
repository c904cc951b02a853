# EDSR x2 with pyramid attention: mmagic's own EDSR recipe (64 channels, 16 ResBlocks, L1, DIV2K
# sub-images, LR 48x48, batch 16, Adam 1e-4 halved at 200k, 300k iterations, Set5 validation)
# with ONE pyramid attention block in the middle of the body (after body.7), where PA-EDSR puts it.
# The body runs at LR resolution, so the attention sees 48x48 features in training.
# Every generator tensor keeps EDSRNet's name: plain EDSR weights load with plain_weights=... below.
_base_ = 'mmagic::edsr/edsr_x2c64b16_1xb16-300k_div2k.py'
custom_imports = dict(imports=['panet_mm'], allow_failed_imports=False)

experiment_name = 'edsr_pa_sr_x2_div2k'
work_dir = f'./work_dirs/{experiment_name}'
# validation metrics logged at the iteration (mmagic's runtime logs them at the epoch, 0 in iteration runs)
default_hooks = dict(logger=dict(log_metric_by_epoch=False))

model = dict(
    generator=dict(
        _delete_=True,
        type='WithPyramidAttention',
        generator=_base_.model.generator,  # mmagic's EDSRNet config, unchanged
        insert=[dict(after='body.7')],  # channels (64) come from a build-time shape probe
        attention_cfg=dict(reduction=2, res_scale=1.0),  # PANet's block defaults at C=64
        # To fine-tune from a trained plain EDSR (strict for EDSR's tensors, attention starts as identity):
        # plain_weights=dict(checkpoint='PATH/edsr_x2.pth', prefix='generator.'),
        # attention_cfg=dict(reduction=2, res_scale=1.0, identity_init=True),
    ))
