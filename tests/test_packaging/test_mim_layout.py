"""The OpenMMLab layout: configs/panet/ names, the model card's metafile, panet_mm/.mim and the panet_mm scope."""
import glob
import os.path as osp
import re
import subprocess
import sys

import pytest
import yaml
from conftest import ROOT

CONFIGS = osp.join(ROOT, 'configs')
CARD = osp.join(CONFIGS, 'panet')


def model_configs():
    """{name: path relative to configs/} of every paper and demo config."""
    paths = glob.glob(osp.join(CONFIGS, 'panet_*.py')) + glob.glob(osp.join(CONFIGS, 'demo', 'panet_*.py'))
    return {osp.splitext(osp.basename(p))[0]: osp.relpath(p, CONFIGS) for p in sorted(paths)}


def metafile():
    with open(osp.join(CARD, 'metafile.yml')) as f:
        return yaml.safe_load(f)


def test_every_config_has_its_card_name_and_nothing_else():
    configs = model_configs()
    assert len(configs) == 16
    card_names = {osp.splitext(osp.basename(p))[0] for p in glob.glob(osp.join(CARD, '*.py'))}
    assert card_names == set(configs)
    for name, rel in configs.items():
        with open(osp.join(CARD, f'{name}.py')) as f:
            code = [line for line in f if not line.startswith('#') and line.strip()]
        assert code == [f"_base_ = '../{rel}'\n"], name


@pytest.mark.parametrize('name', ['panet_sr_x2_div2k', 'panet_dn_sigma30_div2k', 'panet_car_q10_demo'])
def test_card_name_builds_the_same_config(name):
    from mmengine.config import Config
    original = Config.fromfile(osp.join(CONFIGS, model_configs()[name])).to_dict()
    assert Config.fromfile(osp.join(CARD, f'{name}.py')).to_dict() == original


def test_metafile_lists_every_config_with_the_datasets_it_tests():
    from mmengine.config import Config
    meta = metafile()
    configs = model_configs()
    models = {m['Name']: m for m in meta['Models']}
    assert len(models) == len(meta['Models']) and set(models) == set(configs)
    index = yaml.safe_load(open(osp.join(ROOT, 'model-index.yml')))
    assert index == {'Import': ['configs/panet/metafile.yml']}
    assert meta['Collections'][0]['README'] == 'configs/panet/README.md'
    for name, model in models.items():
        assert model['Config'] == f'configs/{configs[name]}'
        if name.endswith('_demo'):
            assert 'demo' in model['Metadata']['Results Source'] and 'Converted From' not in model
            continue
        cfg = Config.fromfile(osp.join(ROOT, model['Config']))
        evaluators = cfg.test_evaluator if isinstance(cfg.test_evaluator, list) else [cfg.test_evaluator]
        tested = {(m['prefix'], m['type']) for ev in evaluators for m in ev['metrics']}
        for result in model['Results']:
            for metric in result['Metrics']:
                assert (result['Dataset'], metric) in tested, (name, result['Dataset'], metric)


def paper_numbers_in_header(path):
    """The numbers a config's header quotes from the paper ("Paper: PSNR ..." line)."""
    with open(path) as f:
        head = ''.join(line for line in f if line.startswith('#'))
    line = head[head.index('Paper:'):].split('\n')[0]
    return [float(x) for x in re.findall(r'\d*\.\d+', line)]


@pytest.mark.parametrize('family', ['dn_sigma', 'car_q'])
def test_metafile_numbers_match_the_config_headers(family):
    for model in metafile()['Models']:
        if not model['Name'].startswith(f'panet_{family}') or model['Name'].endswith('_demo'):
            continue
        quoted = paper_numbers_in_header(osp.join(ROOT, model['Config']))
        listed = [v for r in model['Results'] for v in r['Metrics'].values()]
        assert [round(v, 4) for v in listed] == [round(v, 4) for v in quoted], model['Name']


def test_readme_tables_match_the_metafile():
    with open(osp.join(CARD, 'README.md')) as f:
        readme = f.read()
    for model in metafile()['Models']:
        row = next(line for line in readme.splitlines() if line.startswith(f"| [{model['Name']}]("))
        for result in model['Results']:
            metrics = result['Metrics']
            cell = (f"{metrics['PSNR']:.2f} / {metrics['SSIM']:.4f}" if 'SSIM' in metrics
                    else f"{metrics['PSNR']:.2f}")
            assert cell in row, (model['Name'], result['Dataset'], cell)


@pytest.fixture(scope='module')
def built_package(tmp_path_factory):
    """panet_mm as setup.py's build_py lays it out for a wheel (in a temporary build folder)."""
    build = tmp_path_factory.mktemp('build_py')
    subprocess.run([sys.executable, 'setup.py', '-q', 'build_py', '--build-lib', str(build)], cwd=ROOT, check=True,
                   capture_output=True)
    return build / 'panet_mm'


def test_build_py_ships_configs_tools_and_index(built_package):
    mim = built_package / '.mim'
    assert (mim / 'model-index.yml').read_text() == open(osp.join(ROOT, 'model-index.yml')).read()
    assert (mim / 'configs' / 'panet' / 'metafile.yml').is_file()
    for model in metafile()['Models']:
        assert (mim / model['Config']).is_file()
        assert (mim / 'configs' / 'panet' / f"{model['Name']}.py").is_file()
    for tool in ('train.py', 'test.py', 'restore.py', 'model_converters/convert_official_ckpt.py',
                 'dataset_converters/make_demo_data.py', 'analysis_tools/get_flops.py'):
        assert (mim / 'tools' / tool).is_file()
    assert not list(mim.rglob('__pycache__'))


SCOPE_CHECK = """
import sys
import mmengine.config.config as config_module
import panet_mm  # registers the panet_mm:: prefix
# mmengine finds an installed package's folder with get_installed_path; the checkout's install is editable
config_module.get_installed_path = lambda package: sys.argv[1]
from mmengine.config import Config
from mmengine.registry import HOOKS, MODELS, VISUALIZERS, DefaultScope
cfg = Config.fromfile(sys.argv[2])
assert cfg.model._scope_ == 'panet_mm' and cfg.train_cfg.max_iters == 7, cfg.train_cfg
DefaultScope.get_instance('panet_mm_scope_check', scope_name=cfg.default_scope)
model = MODELS.build(cfg.model)
vis = VISUALIZERS.build(dict(cfg.visualizer, name='check', save_dir=sys.argv[3]))
hooks = [HOOKS.build(h) for h in list(cfg.default_hooks.values()) + list(cfg.custom_hooks)]
assert len(hooks) == len(cfg.default_hooks) + len(cfg.custom_hooks) >= 5
print('built', type(model).__name__, type(model.generator).__name__, type(vis).__name__)
"""


def test_panet_mm_base_resolves_and_builds_in_its_scope(built_package, tmp_path):
    """A config elsewhere inherits 'panet_mm::panet/...'; model, visualiser and hooks build in a fresh process
    (nothing of mmagic imported beforehand) under the panet_mm scope without a warning."""
    user = tmp_path / 'my_config.py'
    user.write_text("_base_ = 'panet_mm::panet/panet_sr_x2_demo.py'\ntrain_cfg = dict(max_iters=7)\n")
    proc = subprocess.run([sys.executable, '-c', SCOPE_CHECK, str(built_package), str(user), str(tmp_path / 'vis')],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert 'built PANetEditModel PAEDSRNet ConcatImageVisualizer' in out
    assert 'WARNING' not in out and 'Failed to' not in out, out


def test_panet_mm_base_needs_the_import_first():
    """Without panet_mm imported mmengine refuses the prefix; the import is what registers it."""
    code = ("from mmengine.config.utils import MODULE2PACKAGE as M; assert 'panet_mm' not in M; "
            "import panet_mm; assert M['panet_mm'] == 'panet_mm'")
    subprocess.run([sys.executable, '-c', code], check=True, cwd=ROOT)


def test_missing_panet_mm_base_is_explained(tmp_path):
    """tools/train.py and tools/test.py say why a panet_mm:: base is missing and what to do, in one line."""
    from mmengine.utils import check_file_exist

    from panet_mm.engine.cli import explain_missing_base

    site = tmp_path / 'site-packages' / 'panet_mm'
    editable = FileNotFoundError(2, 'No such file or directory', str(site / '.mim' / 'model-index.yml'))
    mine = tmp_path / 'my.py'
    mine.write_text("_base_ = 'panet_mm::panet/panet_sr_x2_demo.py'\n")
    # the base the user wrote, not the .mim/model-index.yml path mmengine looked for, and its path in this checkout
    assert explain_missing_base(str(mine), editable) == (
        f"config '{mine}' has the base 'panet_mm::panet/panet_sr_x2_demo.py', which mmengine finds only where panet_mm "
        'is installed with pip install . or its wheel (an editable install has no panet_mm/.mim); install it so, or '
        f"write it as the path '{ROOT}/configs/panet/panet_sr_x2_demo.py'")
    assert 'in one of its _base_ files' in explain_missing_base(str(tmp_path / 'gone.py'), editable)
    with pytest.raises(FileNotFoundError) as wrong_name:
        check_file_exist(str(site / '.mim' / 'configs' / 'panet' / 'nope.py'))  # what mmengine raises
    assert 'configs/panet/README.md' in explain_missing_base('my.py', wrong_name.value)
    with pytest.raises(FileNotFoundError) as local:
        check_file_exist(str(tmp_path / 'base.py'))
    assert explain_missing_base('my.py', local.value) == \
        f"config 'my.py' names a base file that does not exist: {tmp_path / 'base.py'}"
