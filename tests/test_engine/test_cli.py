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


def test_a_quoted_number_is_named_before_torch_fails_on_it():
    """mid_channels='32' ended in "not all arguments converted during string formatting" inside nn.Conv2d."""
    import pytest

    from panet_mm.engine.cli import ConfigArgumentError, check_argument_types
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

    from panet_mm.engine.cli import check_argument_types
    from panet_mm.registry import register_config_package
    register_config_package()
    configs = sorted(glob.glob(f'{ROOT}/configs/**/*.py', recursive=True))
    configs = [c for c in configs if '/_base_/' not in c]
    assert len(configs) > 20
    for path in configs:
        check_argument_types(Config.fromfile(path).get('model'))


def _args(config, *options, work_dir=None):
    import argparse
    return argparse.Namespace(config=config, work_dir=work_dir, cfg_options=list(options) or None, launcher='none',
                              local_rank=0)


def test_iteration_runs_log_validation_metrics_at_the_iteration(tmp_path):
    """mmengine's LoggerHook logged them at the epoch, 0 all through an IterBasedTrainLoop: every validation point
    of scalars.json / TensorBoard sat at step 0. mmagic's own runtime (a plain EDSR config here) too."""
    from conftest import DEMO_CONFIG

    from panet_mm.engine.cli import load_config
    plain = tmp_path / 'edsr.py'
    plain.write_text("_base_ = 'mmagic::edsr/edsr_x2c64b16_1xb16-300k_div2k.py'\n")
    for config in (DEMO_CONFIG, str(plain), 'configs/mix/demo/edsr_pa_sr_x2_demo.py'):
        assert load_config(_args(config)).default_hooks.logger.log_metric_by_epoch is False, config
    kept = load_config(_args(str(plain), 'default_hooks.logger.log_metric_by_epoch=True'))
    assert kept.default_hooks.logger.log_metric_by_epoch is True  # what the config says is kept


def test_a_work_dir_that_is_a_file_is_named(tmp_path):
    """`--work-dir notes.txt` (an existing file) ended in os.makedirs' FileExistsError traceback."""
    import pytest
    from conftest import DEMO_CONFIG

    from panet_mm.engine.cli import load_config
    notes = tmp_path / 'notes.txt'
    notes.write_text('x')
    with pytest.raises(SystemExit, match=rf"^error: --work-dir '{notes}' is a file; name a folder"):
        load_config(_args(DEMO_CONFIG, work_dir=str(notes)))
    with pytest.raises(SystemExit, match=rf"^error: the config's work_dir '{notes}' is a file"):
        load_config(_args(DEMO_CONFIG, f'work_dir={notes}'))


def test_errors_of_a_distributed_run_name_their_process(monkeypatch, capsys):
    """torchrun interleaves the processes' output: a readable line came untagged, and the rank whose collective
    failed because another stopped printed ~40 lines of traceback ending in gloo's "Connection closed by peer"."""
    import pytest

    from panet_mm.engine.cli import readable_errors
    gloo = RuntimeError('[../third_party/gloo/gloo/transport/tcp/pair.cc:534] Connection closed by peer '
                        '[127.0.0.1]:29500')
    with pytest.raises(RuntimeError):  # a single process: not a peer's failure, the traceback stays
        with readable_errors():
            raise gloo
    monkeypatch.setenv('WORLD_SIZE', '2')
    monkeypatch.setenv('RANK', '0')
    monkeypatch.delenv('PANET_MM_DEBUG', raising=False)
    with pytest.raises(SystemExit):
        with readable_errors():
            raise gloo
    assert capsys.readouterr().err == ('error (rank 0): another process of this distributed run stopped; its error '
                                       '(above) says why\n')
    with pytest.raises(RuntimeError, match='CUDA out of memory'):  # other runtime errors are not hidden
        with readable_errors():
            raise RuntimeError('CUDA out of memory')
