"""Every tool's --help imports no heavy library; the third-party import warnings are dropped by ``import panet_mm``
(no filter installed) and filtered by the tools."""
import glob
import json
import logging
import os.path as osp
import subprocess
import sys
import warnings

import pytest
from conftest import ROOT

from panet_mm.engine.quiet import (
    THIRD_PARTY_WARNINGS,
    quiet_third_party_logs,
    quiet_third_party_warnings,
    replay_warnings,
)

TOOLS = sorted(glob.glob(osp.join(ROOT, 'tools', '*.py')) + glob.glob(osp.join(ROOT, 'tools', '*', '*.py')))
HEAVY = ('torch', 'mmagic', 'mmengine', 'mmcv', 'cv2', 'numpy', 'panet_mm')

# Run a tool's --help as `python TOOL --help` does (its folder first on sys.path), then list what it imported.
PROBE = '''
import json, runpy, sys
tool = sys.argv[1]
sys.path.insert(0, __import__('os').path.dirname(tool))
sys.argv = [tool, '--help']
try:
    runpy.run_path(tool, run_name='__main__')
except SystemExit as e:
    code = e.code
print(json.dumps({'code': code, 'heavy': sorted(m for m in HEAVY if m in sys.modules)}))
'''.replace('HEAVY', repr(HEAVY))


def test_every_tool_is_probed():
    names = {osp.relpath(t, ROOT) for t in TOOLS}
    assert {'tools/train.py', 'tools/test.py', 'tools/restore.py', 'tools/analysis_tools/get_flops.py'} <= names


@pytest.mark.parametrize('tool', TOOLS, ids=lambda t: osp.relpath(t, ROOT))
def test_help_imports_nothing_heavy(tool):
    proc = subprocess.run([sys.executable, '-c', PROBE, tool], capture_output=True, text=True, cwd=ROOT, timeout=120)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result == {'code': 0, 'heavy': []}, proc.stderr
    assert 'usage:' in proc.stdout


def test_import_panet_mm_drops_the_stacks_deprecations_and_installs_no_filter():
    """``import panet_mm`` (the console scripts, make_demo_data, a notebook) printed transformers' and diffusers'
    deprecations of torch APIs; they are dropped from its imports only: no filter is installed, so the same
    warning raised later still shows."""
    code = ('import json, warnings; import panet_mm; '
            'print(json.dumps([f[1].pattern for f in warnings.filters if f[1] is not None])); '
            "warnings.warn('`torch.utils._pytree._register_pytree_node` is deprecated (later)', FutureWarning)")
    proc = subprocess.run([sys.executable, '-W', 'default', '-c', code], capture_output=True, text=True, cwd=ROOT,
                          timeout=300)
    installed = set(json.loads(proc.stdout.strip().splitlines()[-1]))
    assert installed.isdisjoint(pattern for pattern, _ in THIRD_PARTY_WARNINGS)
    shown = [ln for ln in proc.stderr.splitlines() if 'Warning: ' in ln and 'ResourceWarning' not in ln]
    assert shown == ['<string>:1: FutureWarning: `torch.utils._pytree._register_pytree_node` is deprecated (later)']


def test_replay_drops_only_the_listed_warnings():
    known = record('`torch.utils._pytree._register_pytree_node` is deprecated. Please use ...', FutureWarning)
    ours = record('panet_mm: the input is grey; it was made colour', UserWarning)
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter('always')
        replay_warnings(known + ours + ours)
        warnings.warn('`np.bool8` is a deprecated alias for `np.bool_`.', DeprecationWarning, stacklevel=1)  # no filter
    assert [(str(w.message), w.category) for w in shown] == [
        ('panet_mm: the input is grey; it was made colour', UserWarning),
        ('`np.bool8` is a deprecated alias for `np.bool_`.', DeprecationWarning)]


def record(message, category):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        warnings.warn(message, category, stacklevel=1)
    return caught


def test_quiet_filters_only_the_listed_warnings():
    known = record('`torch.utils._pytree._register_pytree_node` is deprecated. Please use ...', FutureWarning)
    ours = record('panet_mm: the input is grey; it was made colour', UserWarning)
    # the same message under another category is not filtered: both are matched
    other = record('`torch.utils._pytree._register_pytree_node` is deprecated. Please use ...', UserWarning)
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter('always')
        quiet_third_party_warnings(known + ours + other + ours)
        warnings.warn('`np.bool8` is a deprecated alias for `np.bool_`.', DeprecationWarning, stacklevel=1)  # filtered
        warnings.warn('panet_mm: later', UserWarning, stacklevel=1)
    assert [(str(w.message), w.category) for w in shown] == [
        ('panet_mm: the input is grey; it was made colour', UserWarning),        # once, though recorded twice
        ('`torch.utils._pytree._register_pytree_node` is deprecated. Please use ...', UserWarning),
        ('panet_mm: later', UserWarning)]
    assert all(cat is not Warning for _, cat in THIRD_PARTY_WARNINGS)


def test_quiet_logs_drops_only_the_listed_log_warnings(caplog):
    logger = logging.getLogger('panet_mm_quiet_test')
    quiet_third_party_logs(logger)
    quiet_third_party_logs(logger)                      # once is enough
    assert len(logger.filters) == 1
    with caplog.at_level(logging.INFO, logger=logger.name):
        logger.warning('div2k is not a meta file, simply parsed as meta information')
        logger.warning('"FileClient" will be deprecated in future. Please use io functions')
        logger.warning('data/meta.txt is not a meta file, simply parsed as meta information')   # a path: kept
        logger.info('"FileClient" will be deprecated in future.')                                # not a warning
    assert [r.getMessage() for r in caplog.records] == [
        'data/meta.txt is not a meta file, simply parsed as meta information',
        '"FileClient" will be deprecated in future.']
