"""``panet_mm.engine.config_checks``: registry errors rewritten as one sentence with the names meant, quoted numbers
named before torch fails on them."""
import panet_mm  # noqa: F401  (registers the panet_mm modules)
from panet_mm.engine.config_checks import _registered_classes, _registered_names, explain_unknown_type


def test_registered_names_list_children_of_the_root_registry():
    names = _registered_names('model')
    assert {'PANetEditModel', 'PAEDSRNet', 'EDSRNet', 'PyramidAttention'} <= set(names)
    assert names == sorted(names)
    assert _registered_names('no such registry') == []


def test_registered_classes_finds_a_name_in_any_registry():
    from panet_mm.models.editors.panet.panet_model import PANetEditModel
    assert _registered_classes('PANetEditModel') == [PANetEditModel]
    assert _registered_classes('NoSuchModel') == []


def test_unknown_type_is_named_with_close_registered_names():
    text = explain_unknown_type("'PANetEditModl is not in the mmagic::model registry. Please check ...'")
    assert text.startswith("the config names type='PANetEditModl', which is not registered in the 'model' registry; "
                           'did you mean PANetEditModel')
    assert text.endswith("(panet_mm modules need custom_imports = dict(imports=['panet_mm']))")
    far = explain_unknown_type('Zzzzzz is not in the mmagic::model registry')
    assert 'check the spelling and custom_imports' in far
    assert explain_unknown_type("KeyError: 'lr'") is None


def test_a_quoted_number_is_named_before_torch_fails_on_it():
    """mid_channels='32' ended in "not all arguments converted during string formatting" inside nn.Conv2d."""
    import pytest

    from panet_mm.engine.config_checks import ConfigArgumentError, check_argument_types
    model = dict(type='PANetEditModel', generator=dict(type='PAEDSRNet', mid_channels='32', num_blocks=2))
    with pytest.raises(ConfigArgumentError, match=r"^the config gives PAEDSRNet mid_channels='32' "
                       r'\(model.generator.mid_channels\), a string where it takes an int; write mid_channels=32 '
                       'without quotes$'):
        check_argument_types(model)
    attention = dict(type='PAEDSRNet', attention_cfg=dict(reduction=2), res_scale='small')
    with pytest.raises(ConfigArgumentError, match=r"res_scale='small' \(model.res_scale\), a string where it takes "
                       'a number; give res_scale a number'):
        check_argument_types(attention)
    check_argument_types(dict(type='NotRegistered', mid_channels='32'))  # unknown types are left to the build
    check_argument_types(dict(type='PAEDSRNet', mid_channels=32, res_scale=1, rgb_mean=[0.4, 0.4, 0.4]))


def test_a_dict_merged_over_a_base_dict_of_another_type_names_delete(tmp_path):
    """generator=dict(type='WithPyramidAttention', ...) over mmagic's EDSRNet dict without _delete_=True (the most
    likely mistake when mixing): mmengine merged EDSRNet's keys into it and the build said only "an argument
    'in_channels' that it does not take"."""
    import pytest
    from mmengine.config import Config

    from panet_mm.engine.config_checks import ConfigArgumentError, check_argument_types
    config = tmp_path / 'mine.py'
    config.write_text("_base_ = 'mmagic::edsr/edsr_x2c64b16_1xb16-300k_div2k.py'\n"
                      "model = dict(generator=dict(type='WithPyramidAttention', generator=dict(type='EDSRNet'), "
                      "insert=[dict(after='body.7')]))\n")
    with pytest.raises(ConfigArgumentError, match=r"^the config gives WithPyramidAttention \(model.generator\) the "
                       r"arguments \['in_channels', 'out_channels', .*\], which it does not take \(it takes "
                       r'generator, insert, .*\); where this dict replaces a _base_ config.s dict of another type, '
                       r"mmengine merged that dict's keys into it: add _delete_=True to model.generator in this "
                       r'config$'):
        check_argument_types(Config.fromfile(str(config)).model)
    # one misspelt key is left to the build's message, which names the close argument
    check_argument_types(dict(type='PAEDSRNet', mid_chanels=32))


def test_every_shipped_config_passes_the_argument_check():
    import glob

    from conftest import ROOT
    from mmengine.config import Config

    from panet_mm.engine.config_checks import check_argument_types, check_optim_settings, misspelt_top_level_keys
    from panet_mm.registry import register_config_package
    register_config_package()
    configs = sorted(glob.glob(f'{ROOT}/configs/**/*.py', recursive=True))
    configs = [c for c in configs if '/_base_/' not in c]
    assert len(configs) > 20
    for path in configs:
        cfg = Config.fromfile(path)
        check_argument_types(cfg.get('model'))
        check_optim_settings(cfg)
        assert misspelt_top_level_keys(cfg) == [], path   # their own variables are no near-miss of a runner key


def test_nested_attention_settings_are_checked_as_pyramid_attention_arguments():
    """attention_cfg=dict(reduction='4') failed with "unsupported operand type(s) for %: 'int' and 'str'" (in a mixing
    config's insert entry as well), and softmax_scale='10' was taken without a word."""
    import pytest

    from panet_mm.engine.config_checks import ConfigArgumentError, check_argument_types
    model = dict(type='PANetEditModel', generator=dict(type='PAEDSRNet', attention_cfg=dict(reduction='4')))
    with pytest.raises(ConfigArgumentError, match=r"^the config gives PyramidAttention reduction='4' "
                       r'\(model.generator.attention_cfg.reduction\), a string where it takes an int; write '
                       'reduction=4 without quotes$'):
        check_argument_types(model)
    with pytest.raises(ConfigArgumentError, match=r"PyramidAttention softmax_scale='10' \(model.attention_cfg."
                       r'softmax_scale\), a string where it takes a number; write softmax_scale=10 without quotes$'):
        check_argument_types(dict(type='PANet', attention_cfg=dict(softmax_scale='10')))
    mix = dict(type='WithPyramidAttention', generator=dict(type='EDSRNet', in_channels=3, out_channels=3),
               insert=[dict(after='body.1'), dict(after='body.3', reduction='4')])
    with pytest.raises(ConfigArgumentError, match=r"PyramidAttention reduction='4' \(model.insert\[1\].reduction\), "
                       'a string where it takes an int'):
        check_argument_types(mix)
    mix['insert'] = [dict(after='body.1', reduction=4)]
    mix['attention_cfg'] = dict(res_scale=None)
    with pytest.raises(ConfigArgumentError, match=r'res_scale=None \(model.attention_cfg.res_scale\), no value where '
                       'it takes a number; give res_scale a number$'):
        check_argument_types(mix)
    mix['attention_cfg'] = dict(softmax_scale=10, chunk_size=None, implementation='reference')
    check_argument_types(mix)
    # only panet_mm's classes pass attention_cfg on to PyramidAttention (mmagic's SAGAN has one of its own)
    check_argument_types(dict(type='SAGANGenerator', attention_cfg=dict(reduction='4')))


def test_optimizer_and_scheduler_settings_are_named_before_training_starts():
    """lr='1e-4' failed inside torch's Adam ("'<=' not supported between instances of 'float' and 'str'"),
    type='Adamm' with "None is not a callable object", a misspelt scheduler with mmengine's KeyError."""
    import pytest

    from panet_mm.engine.config_checks import ConfigArgumentError, check_optim_settings

    def cfg(**kwargs):
        base = dict(optim_wrapper=dict(type='OptimWrapper', optimizer=dict(type='Adam', lr=1e-4, betas=(0.9, 0.999))),
                    param_scheduler=dict(type='MultiStepLR', by_epoch=False, milestones=[200], gamma=0.5))
        base.update(kwargs)
        return base

    check_optim_settings(cfg())
    check_optim_settings({})
    with pytest.raises(ConfigArgumentError, match=r"^the config gives Adam lr='1e-4' \(optim_wrapper.optimizer.lr\), "
                       'a string where it takes a number; write lr=1e-4 without quotes$'):
        check_optim_settings(cfg(optim_wrapper=dict(optimizer=dict(type='Adam', lr='1e-4'))))
    with pytest.raises(ConfigArgumentError, match=r'^the config gives Adam lr=None \(optim_wrapper.optimizer.lr\), '
                       'no value where it takes a number; give lr a number$'):
        check_optim_settings(cfg(optim_wrapper=dict(optimizer=dict(type='Adam', lr=None))))
    with pytest.raises(ConfigArgumentError, match=r"^the config names type='Adamm' \(optim_wrapper.optimizer.type\), "
                       "which is not registered in the 'optimizer' registry; did you mean Adam"):
        check_optim_settings(cfg(optim_wrapper=dict(optimizer=dict(type='Adamm', lr=1e-4))))
    with pytest.raises(ConfigArgumentError, match=r"type='OptimWraper' \(optim_wrapper.type\), .*did you mean "
                       'OptimWrapper'):
        check_optim_settings(cfg(optim_wrapper=dict(type='OptimWraper', optimizer=dict(type='Adam'))))
    with pytest.raises(ConfigArgumentError, match=r"type='MultiStepLRR' \(param_scheduler\[1\].type\), which is not "
                       "registered in the 'parameter scheduler' registry; did you mean MultiStepLR"):
        check_optim_settings(cfg(param_scheduler=[dict(type='LinearLR'), dict(type='MultiStepLRR')]))
    with pytest.raises(ConfigArgumentError, match=r"MultiStepLR gamma='0.5' \(param_scheduler.gamma\)"):
        check_optim_settings(cfg(param_scheduler=dict(type='MultiStepLR', milestones=[2], gamma='0.5')))
    # one wrapper per part of the model (MultiOptimWrapperConstructor)
    parts = dict(constructor='MultiOptimWrapperConstructor', generator=dict(optimizer=dict(type='Adam', lr=1e-4)),
                 discriminator=dict(optimizer=dict(type='SGD', lr='abc')))
    with pytest.raises(ConfigArgumentError, match=r"SGD lr='abc' \(optim_wrapper.discriminator.optimizer.lr\), a "
                       'string where it takes a number; give lr a number$'):
        check_optim_settings(cfg(optim_wrapper=parts))


def test_unknown_types_of_child_registries_and_spaced_names_get_close_names():
    """mmagic's child of mmengine's optim_wrapper registry is named optimizer_wrapper (no close names were found),
    and 'parameter scheduler' has a space (mmengine's KeyError went through as a traceback)."""
    text = explain_unknown_type("'OptimWraper is not in the mmagic::optimizer_wrapper registry. Please check ...'")
    assert "registered in the 'optimizer_wrapper' registry; did you mean OptimWrapper" in text
    text = explain_unknown_type("'MultiStepLRR is not in the mmagic::parameter scheduler registry. Please check'")
    assert text.startswith("the config names type='MultiStepLRR', which is not registered in the 'parameter "
                           "scheduler' registry; did you mean MultiStepLR")


def test_a_tool_stops_on_a_bad_optimizer_setting_with_one_line_and_creates_nothing(tmp_path, monkeypatch):
    """tools/train.py ran until mmengine built the optimizer (after the work directory, its logs and the data
    loaders) and ended in torch's traceback."""
    import pytest
    from conftest import ROOT

    from panet_mm.engine.cli import read_tool_config
    monkeypatch.chdir(tmp_path)
    settings = {"optim_wrapper = dict(optimizer=dict(lr='1e-4'))":
                "error: the config gives Adam lr='1e-4' (optim_wrapper.optimizer.lr), a string where it takes a "
                'number; write lr=1e-4 without quotes',
                "optim_wrapper = dict(optimizer=dict(type='Adamm'))":
                "error: the config names type='Adamm' (optim_wrapper.optimizer.type), which is not registered in the "
                "'optimizer' registry; did you mean Adam",
                "model = dict(generator=dict(attention_cfg=dict(reduction='4')))":
                "error: the config gives PyramidAttention reduction='4' (model.generator.attention_cfg.reduction), a "
                'string where it takes an int; write reduction=4 without quotes'}
    for line, message in settings.items():
        (tmp_path / 'my.py').write_text(f"_base_ = '{ROOT}/configs/demo/panet_sr_x2_demo.py'\n{line}\n")
        with pytest.raises(SystemExit) as err:
            read_tool_config('my.py')
        assert str(err.value.code).startswith(message)
    assert sorted(p.name for p in tmp_path.iterdir()) == ['my.py']


def test_constructors_can_refuse_a_quoted_number_in_the_words_of_the_tools():
    """PyramidAttention(channels='8') failed with "not all arguments converted during string formatting"."""
    import pytest

    from panet_mm.engine.config_checks import ConfigArgumentError, check_init_arguments
    from panet_mm.models.editors.panet.panet_net import PAEDSRNet
    from panet_mm.models.layers import PyramidAttention
    with pytest.raises(ConfigArgumentError, match=r"^PyramidAttention got channels='8', a string where it takes an "
                       'int; write channels=8 without quotes$'):
        check_init_arguments(PyramidAttention, dict(channels='8', reduction=2))
    with pytest.raises(ConfigArgumentError, match=r"^PAEDSRNet got mid_channels='sixteen', a string where it takes an "
                       'int; give mid_channels a number$'):
        check_init_arguments(PAEDSRNet, dict(mid_channels='sixteen'))
    with pytest.raises(ConfigArgumentError, match='^PyramidAttention got softmax_scale=None, no value where it takes '
                       'a number; give softmax_scale a number$'):
        check_init_arguments(PyramidAttention, dict(softmax_scale=None))
    check_init_arguments(PyramidAttention, dict(self=None, channels=8, chunk_size=None, memory_budget_mb=None,
                                                implementation='reference'))


def test_a_misspelt_top_level_key_is_named_with_the_key_it_nearly_is(tmp_path, capsys):
    """mmengine ignores top-level keys it does not read: `train_dataloder = dict(...)` trained with the base's loader
    without a word."""
    from conftest import DEMO_CONFIG

    from panet_mm.engine.cli import load_config
    from panet_mm.engine.config_checks import misspelt_top_level_keys
    assert misspelt_top_level_keys(dict(train_dataloder=dict(), val_evaluators=[], scale=2, data_root='x',
                                        train_pipeline=[], _base_='b.py')) == [
        "the config's top-level key 'train_dataloder' is not one the runner reads, so it is ignored; did you mean "
        "'train_dataloader'?",
        "the config's top-level key 'val_evaluators' is not one the runner reads, so it is ignored; did you mean "
        "'val_evaluator'?"]
    mine = tmp_path / 'mine.py'
    mine.write_text(f"_base_ = '{DEMO_CONFIG}'\ntrain_dataloder = dict(batch_size=2)\n")
    import argparse
    load_config(argparse.Namespace(config=str(mine), cfg_options=None, launcher='none', local_rank=0,
                                   work_dir=str(tmp_path / 'w')))
    err = capsys.readouterr().err
    assert "warning: the config's top-level key 'train_dataloder' is not one the runner reads" in err
    # panet_mm's own switches too: a misspelt sr_test_crop on a config without the key scored GTmod12 silently
    assert misspelt_top_level_keys(dict(sr_test_crp='scale', allow_partial_loads=True)) == [
        "the config's top-level key 'sr_test_crp' is not one the runner reads, so it is ignored; did you mean "
        "'sr_test_crop'?",
        "the config's top-level key 'allow_partial_loads' is not one the runner reads, so it is ignored; did you "
        "mean 'allow_partial_load'?"]
