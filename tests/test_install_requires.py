"""setup.py's install_requires are true for both tested stacks: every pin of requirements/constraints.txt
(pinned) and requirements/constraints-modern.txt (modern) satisfies them, and so does the stack this suite
runs in (what ``pip check`` would say about panet_mm)."""
import ast
import os.path as osp
from importlib import metadata

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONSTRAINTS = ('requirements/constraints.txt', 'requirements/constraints-modern.txt')


def install_requires():
    """The ``install_requires`` list of setup.py, read without running it."""
    with open(osp.join(ROOT, 'setup.py')) as f:
        tree = ast.parse(f.read())
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg == 'install_requires':
            return [Requirement(s) for s in ast.literal_eval(node.value)]
    raise AssertionError('setup.py has no install_requires')


def pins(path):
    """``name -> Version`` of the ``name==version`` lines of a constraints file."""
    out = {}
    with open(osp.join(ROOT, path)) as f:
        for line in f:
            line = line.split('#')[0].strip()
            if line:
                req = Requirement(line)
                (spec,) = req.specifier
                assert spec.operator == '==', f'{path}: {line!r} is not an exact pin'
                out[req.name.lower().replace('_', '-')] = Version(spec.version)
    return out


@pytest.mark.parametrize('path', CONSTRAINTS)
def test_each_stack_pins_satisfy_install_requires(path):
    stack = pins(path)
    for req in install_requires():
        name = req.name.lower()
        if not req.specifier:
            continue  # any version will do (tqdm)
        assert name in stack, f'{path} does not pin {name}, which setup.py requires'
        assert req.specifier.contains(stack[name]), f'{path} pins {name}=={stack[name]}, outside setup.py {req}'


def test_installed_stack_satisfies_install_requires():
    for req in install_requires():
        installed = Version(metadata.version(req.name))
        assert req.specifier.contains(installed), f'installed {req.name} {installed} is outside setup.py {req}'


def test_modern_stack_is_numpy2_and_newer_torch():
    pinned, modern = (pins(p) for p in CONSTRAINTS)
    assert pinned['numpy'].major == 1 and modern['numpy'].major == 2
    assert modern['torch'] > pinned['torch']
    # same mmagic stack on both: one code base
    assert all(pinned[n] == modern[n] for n in ('mmagic', 'mmcv', 'mmengine', 'diffusers', 'transformers'))
    # setuptools >= 77.0.3 (torch >= 2.14 metadata) and < 81 (mmcv 2.1.0 and mmengine import pkg_resources)
    assert Version('77.0.3') <= modern['setuptools'] < Version('81')
