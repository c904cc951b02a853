"""Rewritten registry errors of ``panet_mm.engine.cli`` (one sentence with the names meant)."""
import panet_mm  # noqa: F401  (registers the panet_mm modules)
from panet_mm.engine.cli import _registered_classes, _registered_names, explain_unknown_type


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
