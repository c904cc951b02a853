"""panet_mm.utils.config.read_config: a config file broken while editing is named with its line, not a traceback."""
import os.path as osp
import re
import subprocess
import sys
from unittest import mock

import pytest
from conftest import DEMO_CONFIG, ROOT

from panet_mm.utils.config import ConfigFileError, read_config


def write(path, text):
    path.write_text(text)
    return str(path)


def test_a_syntax_error_names_the_file_and_line(tmp_path):
    bad = write(tmp_path / 'bad.py', f"_base_ = '{DEMO_CONFIG}'\ntrain_cfg = dict(max_iters=10\n")
    with pytest.raises(ConfigFileError) as err:
        read_config(bad)
    assert str(err.value) == f"config '{bad}' is not valid Python: '(' was never closed at line 2; fix that line"


def test_a_syntax_error_in_a_base_names_the_base(tmp_path):
    base = write(tmp_path / 'base.py', 'x = [1, 2\n')
    child = write(tmp_path / 'child.py', "_base_ = './base.py'\n")
    with pytest.raises(ConfigFileError, match=rf"config '{base}' \(a base of '{child}'\) is not valid Python: .* at "
                       'line 1; fix that line'):
        read_config(child)


@pytest.mark.parametrize('line, error', [('train_cfg = dict(max_iters=undefined_name)',
                                          "NameError: name 'undefined_name' is not defined"),
                                         ('scale = 1 / 0', 'ZeroDivisionError: division by zero'),
                                         ("import numpy as np\nx = np.zeros('big')", 'TypeError: ')])
def test_an_error_in_the_configs_code_names_the_line(tmp_path, line, error):
    bad = write(tmp_path / 'bad.py', f"_base_ = '{DEMO_CONFIG}'\n{line}\n")
    with pytest.raises(ConfigFileError) as err:
        read_config(bad)
    where = line.count('\n') + 2
    assert str(err.value).startswith(f"config '{bad}' stopped at line {where} with {error}")
    assert str(err.value).endswith('; fix that line')


def test_errors_of_the_libraries_themselves_pass_through(tmp_path):
    good = write(tmp_path / 'good.py', 'x = 1\n')
    with mock.patch('mmengine.config.Config.fromfile', side_effect=RuntimeError('mmengine broke')):
        with pytest.raises(RuntimeError, match='mmengine broke'):
            read_config(good)
    with pytest.raises(FileNotFoundError):
        read_config(str(tmp_path / 'missing.py'))
    assert read_config(good).x == 1


def test_train_and_restore_tools_say_it_in_one_line(tmp_path):
    bad = write(tmp_path / 'bad.py', f"_base_ = '{DEMO_CONFIG}'\ntrain_cfg = dict(max_iters=undefined_name)\n")
    for args in (['tools/train.py', bad, '--work-dir', str(tmp_path / 'w')],
                 ['tools/restore.py', '--config', bad, '--checkpoint', str(tmp_path / 'k.pth'), DEMO_CONFIG,
                  str(tmp_path / 'out.png')]):
        proc = subprocess.run([sys.executable] + args, capture_output=True, text=True, cwd=ROOT, timeout=300)
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        assert proc.returncode in (1, 2) and len(lines) == 1, proc.stderr
        assert lines[0].endswith(f"'{bad}' stopped at line 2 with NameError: name 'undefined_name' is not defined; "
                                 'fix that line')
    assert not (tmp_path / 'w').exists() and not (tmp_path / 'out.png').exists()


def test_tools_take_the_names_of_shipped_configs(tmp_path, monkeypatch):
    """A wheel user has no configs/ folder: `panet-train panet_mm::panet/panet_sr_x2_demo.py` (or the model name)
    said "config file ... not found" while panet-restore took both."""
    from panet_mm.engine.cli import read_tool_config
    monkeypatch.chdir(tmp_path)
    for name in ('panet_mm::panet/panet_sr_x2_demo.py', 'panet_sr_x2_demo'):
        cfg = read_tool_config(name, ['train_cfg.max_iters=3'])
        assert cfg.model.generator.type == 'PAEDSRNet' and cfg.train_cfg.max_iters == 3
    with pytest.raises(SystemExit, match="config 'panet_sr_x9' is neither a config file nor a registered model; .*"
                       'panet_sr_x2_demo'):
        read_tool_config('panet_sr_x9')
    with pytest.raises(SystemExit,
                       match="error: config file 'mine.py' not found; pass a config path, 'panet_mm::panet/<name>.py'"):
        read_tool_config('mine.py')
    with pytest.raises(SystemExit, match='neither a config file'):
        read_tool_config('panet_mm::panet/../../../setup.py')  # a name never reaches files outside the configs


def test_prepare_commands_are_given_as_they_run_from_here(tmp_path, monkeypatch):
    from panet_mm.datasets.checked_image_dataset import runnable_command
    cmd = 'python tools/dataset_converters/make_demo_data.py --out data/demo'
    monkeypatch.chdir(ROOT)
    assert runnable_command(cmd) == cmd
    monkeypatch.chdir(tmp_path)  # elsewhere: the checkout's (or an installed wheel's .mim) script, by its path
    assert runnable_command(cmd) == f'python {ROOT}/tools/dataset_converters/make_demo_data.py --out data/demo'
    assert runnable_command('bash other.sh') == 'bash other.sh'


@pytest.mark.parametrize('tool', ['tools/analysis_tools/get_flops.py', 'tools/analysis_tools/measure_inference.py'])
def test_analysis_tools_take_shipped_config_names_and_say_missing_ones_as_the_others(tool):
    """get_flops / measure_inference checked for a file first: a model name (which train / test / restore take)
    was 'not found', in a wording of their own."""
    from panet_mm.utils.config_names import config_not_found
    proc = subprocess.run([sys.executable, tool, 'panet_sr_x9'], capture_output=True, text=True, cwd=ROOT,
                          timeout=300)
    assert proc.returncode != 0 and config_not_found('panet_sr_x9') in proc.stderr
    assert 'panet_sr_x2_demo' in config_not_found('panet_sr_x9')
    assert config_not_found('mine.py').startswith("config file 'mine.py' not found; pass a config path")
    proc = subprocess.run([sys.executable, tool, 'panet_sr_x2_demo', *(['--shape', '16', '16'] if 'flops' in tool
                                                                       else ['--size', '16'])],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr


def test_a_checkout_path_from_elsewhere_is_answered_with_the_shipped_name(tmp_path):
    """From outside the checkout (or with a wheel), the README's `configs/panet_sr_x2_div2k.py` got the list of every
    model name and a pointer to configs/panet/README.md, a file an install does not have."""
    proc = subprocess.run([sys.executable, osp.join(ROOT, 'tools', 'train.py'), 'configs/panet_sr_x2_div2k.py'],
                          capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines()[-1] == (
        "error: config file 'configs/panet_sr_x2_div2k.py' not found here (a path in a panet_mm checkout); pass the "
        "config panet_mm ships, 'panet_mm::panet/panet_sr_x2_div2k.py' or its model name 'panet_sr_x2_div2k'")
    from panet_mm.utils.config_names import config_not_found
    assert 'README.md' not in config_not_found('mine.py')


@pytest.mark.parametrize('base, line, used', [
    ('configs/panet_sr_x2_div2k.py', 'scale = 3', "uses 2 (model.generator.upscale_factor)"),
    ('configs/panet_dn_sigma30_div2k.py', 'sigma = 50', 'uses 30 (train_dataloader.dataset.pipeline'),
    ('configs/panet_car_q10_div2k.py', 'quality = 20', 'uses 10 (train_dataloader.dataset.pipeline'),
    ('configs/panet_demosaic_div2k.py', "pattern = 'RGGB'", "uses 'GRBG' (train_dataloader.dataset.pipeline"),
])
def test_a_variable_the_base_already_used_is_refused(tmp_path, base, line, used):
    """`scale = 3` in a child of the x2 config trained and evaluated x2 without a word (mmengine evaluates the
    base first); the same for sigma, quality and the Bayer pattern."""
    config = tmp_path / 'child.py'
    config.write_text(f"_base_ = '{ROOT}/{base}'\n{line}\n")
    name = line.split(' = ')[0]
    with pytest.raises(ConfigFileError, match=rf"^config '{config}' sets {line}, but what it builds {re.escape(used)}"):
        read_config(str(config))
    # carrying the new value into a key that uses it is the fix the message names: then the config is read
    fixed = tmp_path / 'fixed.py'
    carried = {'scale': 'model = dict(generator=dict(upscale_factor=scale))',
               'sigma': 'test_pipeline_on_the_fly = [dict(type="SeededGaussianNoise", sigma=sigma)]',
               'quality': 'x = dict(quality=quality)', 'pattern': 'x = dict(pattern=pattern)'}[name]
    fixed.write_text(f"_base_ = '{ROOT}/{base}'\n{line}\n{carried}\n")
    assert read_config(str(fixed))[name] == eval(line.split(' = ')[1])


def test_a_data_root_the_base_already_used_is_refused_and_moved_datasets_are_not(tmp_path):
    """data_root = '/data' in a child of a demo config (its datasets are built from data_root) was silently
    ignored: the run then looked in data/demo. Datasets pointed elsewhere by the child itself are fine."""
    base = f"_base_ = '{ROOT}/configs/demo/panet_sr_x2_demo.py'\n"
    config = tmp_path / 'child.py'
    config.write_text(base + "data_root = '/data/mine'\n")
    with pytest.raises(ConfigFileError, match=rf"^config '{config}' sets data_root = '/data/mine', but its datasets "
                       r"read 'data/demo/\w+' \(\w+_dataloader.dataset.data_root\): a _base_ file is evaluated "
                       r"before its child.*set each dataset's data_root in this file"):
        read_config(str(config))
    moved = tmp_path / 'moved.py'
    moved.write_text(base + "data_root = '/data/mine'\n" + ''.join(
        f"{k}_dataloader = dict(dataset=dict(data_root=data_root + '/{d}'))\n"
        for k, d in (('train', 'DIV2K'), ('val', 'Set5'), ('test', 'Set5'))))
    assert read_config(str(moved)).train_dataloader.dataset.data_root == '/data/mine/DIV2K'
    prefixed = tmp_path / 'prefixed.py'  # paths built through data_prefix and ~: the variable is used
    prefixed.write_text(base + "data_root = '~/mine'\n" + ''.join(
        f"{k}_dataloader = dict(dataset=dict(data_root='', data_prefix=dict(gt=__import__('os.path').path."
        f"expanduser(data_root) + '/{d}')))\n" for k, d in (('train', 'DIV2K'), ('val', 'Set5'), ('test', 'Set5'))))
    assert read_config(str(prefixed)).data_root == '~/mine'
    elsewhere = tmp_path / 'elsewhere.py'  # the variable left alone, one dataset moved: nothing to say
    elsewhere.write_text(base + "train_dataloader = dict(dataset=dict(data_root='/big/DIV2K'))\n")
    assert read_config(str(elsewhere)).data_root == 'data/demo'


def test_a_key_changed_without_its_variable_names_the_variable_to_add(tmp_path):
    """Only upscale_factor=3 in a child of the x2 config: the message said the child 'sets scale = 2' and to start
    from the config for scale 2, the opposite of what its user is after."""
    config = tmp_path / 'child.py'
    config.write_text(f"_base_ = '{ROOT}/configs/panet_sr_x2_div2k.py'\n"
                      'model = dict(generator=dict(upscale_factor=3))\n')
    with pytest.raises(ConfigFileError) as err:
        read_config(str(config))
    assert str(err.value) == (
        f"config '{config}' builds model.generator.upscale_factor = 3, but the scale of its _base_ (scale = 2) still "
        'sets its data folders, pipelines and metrics: add scale = 3 to this file and set the keys that use it here '
        'too (a _base_ file is evaluated before its child), or start from the shipped config for scale 3')


def test_a_dict_over_the_base_list_of_test_sets_names_the_list_form(tmp_path):
    """`test_dataloader = dict(...)` over a base's list of test sets was mmengine's TypeError traceback."""
    base = f"_base_ = '{ROOT}/configs/panet_dn_sigma30_div2k.py'\n"
    config = tmp_path / 'mine.py'
    config.write_text(base + "test_dataloader = dict(dataset=dict(data_root='data/mine'))\n")
    with pytest.raises(ConfigFileError, match=rf"^config '{config}' gives test_dataloader a dict, but its base "
                       r"makes it a list .* test_dataloader = \[dict\(item, \.\.\.\) for item in "
                       r"_base_.test_dataloader\], or put _delete_=True in the dict"):
        read_config(str(config))
    config.write_text(base + "test_dataloader = [dict(item, dataset=dict(item.dataset, data_root='data/mine'))\n"
                             '                   for item in _base_.test_dataloader]\n')
    cfg = read_config(str(config))  # the form the message gives works
    assert [d.dataset.data_root for d in cfg.test_dataloader] == ['data/mine'] * len(cfg.test_dataloader)
    config.write_text(base + "test_dataloader = dict(_delete_=True, dataset=dict(data_root='data/mine'))\n")
    assert read_config(str(config)).test_dataloader.dataset.data_root == 'data/mine'
    config.write_text(base + "x = 1 + 'a'\n")  # the config's own TypeError is still placed at its line
    with pytest.raises(ConfigFileError, match='stopped at line 2 with TypeError'):
        read_config(str(config))


def test_a_checkpoint_or_other_file_given_as_the_config_is_named(tmp_path):
    """mmengine stopped with "OSError: Only py/yml/yaml/json type are supported now!" (a traceback in every tool)."""
    checkpoint = tmp_path / 'iter_40.pth'
    checkpoint.write_bytes(b'')
    with pytest.raises(ConfigFileError, match=rf"^config '{checkpoint}' is a checkpoint, not a config file \(.py, "
                       r'.yml, .yaml, .json\); pass the config first'):
        read_config(str(checkpoint))
    notes = tmp_path / 'notes.txt'
    notes.write_text('x')
    with pytest.raises(ConfigFileError, match=rf"^config '{notes}' is not a config file"):
        read_config(str(notes))


def test_an_import_in_a_config_with_base_names_the_two_styles(tmp_path):
    """`import os` above `_base_ = ...` ended in mmengine's ConfigParsingError traceback ("... must match the current
    configuration file type, either lazy_import or non-lazy_import")."""
    config = tmp_path / 'mine.py'
    config.write_text(f"import os\n_base_ = '{ROOT}/configs/demo/panet_sr_x2_demo.py'\nwork_dir = os.sep\n")
    with pytest.raises(ConfigFileError, match=rf"^config '{config}' has an import statement, which makes mmengine "
                       r'read it as a lazy-import config, but it inherits with _base_ = \.\.\.; drop the import'):
        read_config(str(config))
    config.write_text(f"_base_ = '{ROOT}/configs/demo/panet_sr_x2_demo.py'\nwork_dir = __import__('os').sep\n")
    assert read_config(str(config)).work_dir == '/'  # the form the message gives


def test_two_bases_setting_the_same_key_are_named_in_one_sentence(tmp_path):
    """mmengine's KeyError traceback "Duplicate key is not allowed among bases" became one sentence with the fix."""
    (tmp_path / 'a.py').write_text("model = dict(type='A')\nx = 1\n")
    (tmp_path / 'b.py').write_text("model = dict(type='B')\n")
    config = tmp_path / 'child.py'
    config.write_text("_base_ = ['./a.py', './b.py']\n")
    with pytest.raises(ConfigFileError) as err:
        read_config(str(config))
    assert str(err.value) == (
        f"config '{config}' has two _base_ files that both set {{'model'}}, which mmengine refuses (it merges a "
        'child into its base, not two bases); keep one of those bases and set what you need of the other in this file')
