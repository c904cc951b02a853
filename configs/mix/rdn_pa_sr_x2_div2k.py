# RDN x2 with pyramid attention: mmagic's own RDN recipe (64 channels, 16 residual dense blocks,
# L1, DIV2K sub-images, HR 64x64 patches, batch 16, Adam 1e-4 halved every 200k, 1M iterations)
# with one pyramid attention block after the 8th RDB (rdbs.7). Its output feeds both the next RDB
# and RDN's global feature fusion. All RDB features are at LR resolution.
_base_ = 'mmagic::rdn/rdn_x2c64b16_1xb16-1000k_div2k.py'
custom_imports = dict(imports=['panet_mm'], allow_failed_imports=False)

experiment_name = 'rdn_pa_sr_x2_div2k'
work_dir = f'./work_dirs/{experiment_name}'
# validation metrics logged at the iteration (mmagic's runtime logs them at the epoch, 0 in iteration runs)
default_hooks = dict(logger=dict(log_metric_by_epoch=False))

model = dict(
    generator=dict(
        _delete_=True,
        type='WithPyramidAttention',
        generator=_base_.model.generator,  # mmagic's RDNNet config, unchanged
        insert=[dict(after='rdbs.7')],
        attention_cfg=dict(reduction=2, res_scale=1.0)))
