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


def test_every_shipped_config_passes_the_argument_check():
    import glob

    from conftest import ROOT
    from mmengine.config import Config

    from panet_mm.engine.config_checks import check_argument_types
    from panet_mm.registry import register_config_package
    register_config_package()
    configs = sorted(glob.glob(f'{ROOT}/configs/**/*.py', recursive=True))
    configs = [c for c in configs if '/_base_/' not in c]
    assert len(configs) > 20
    for path in configs:
        check_argument_types(Config.fromfile(path).get('model'))
