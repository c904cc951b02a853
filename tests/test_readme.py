"""The README's commands are the ones CI runs and the ones that exist."""
import os.path as osp
import re

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def read(path):
    with open(osp.join(ROOT, path)) as f:
        return f.read()


def test_ci_runs_the_readme_test_command():
    ci_lines = [ln for ln in read('.ci/run').splitlines() if 'pytest' in ln and not ln.startswith('#')]
    command = ci_lines[0].strip()
    assert command.startswith('bash tools/setup_env.sh')
    assert command in read('README.md')


def test_readme_configs_and_tools_exist():
    readme = read('README.md')
    for path in sorted(set(re.findall(r'\b((?:configs|tools)/[\w./-]+\.(?:py|sh))', readme))):
        assert osp.isfile(osp.join(ROOT, path)), f'README mentions {path}, which does not exist'
