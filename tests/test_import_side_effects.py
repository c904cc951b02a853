"""Importing panet_mm registers its modules and changes nothing else a user of mmengine / mmagic would notice.

A first subprocess imports panet_mm and lists, in import order, every other module that came with it.
A second one imports those modules first (so their own import-time effects are not counted), takes a
snapshot of the mmengine / mmagic / torch / numpy / logging / warnings state, imports panet_mm and takes
another: every entry that was there must be unchanged, and the only new entries are panet_mm's own
(its registered modules, its child registries of scope ``panet_mm``, its file backend, its config
package, the attention kernel's handle in mmengine's flop counter; on numpy 2, the numpy aliases mmagic needs).
"""
import json
import os
import os.path as osp
import subprocess
import sys

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))

_LIST_MODULES = r'''
import json, sys
before = set(sys.modules)
import panet_mm  # noqa: F401
print(json.dumps([m for m in sys.modules if m not in before and m.split('.')[0] != 'panet_mm']))
'''

_SNAPSHOT = r'''
import importlib, json, logging, os, sys, warnings


def name_of(obj):
    return f'{getattr(obj, "__module__", "?")}.{getattr(obj, "__qualname__", type(obj).__name__)}'


def registries(state):
    import mmengine.registry as roots
    from mmengine.registry import Registry

    def walk(reg, path):
        state[f'registry {path}'] = {k: name_of(v) for k, v in reg._module_dict.items()}
        state[f'registry {path}']['<locations>'] = repr(list(reg._locations))
        for scope, child in reg._children.items():
            walk(child, f'{path}/{scope}')

    for name, reg in sorted(vars(roots).items()):
        if isinstance(reg, Registry) and reg.parent is None:
            walk(reg, f'{name}:{reg.scope}')


def snapshot():
    import mmengine.config.utils as config_utils
    import mmengine.fileio as fileio
    import mmengine.fileio.backends.registry_utils as backend_registry
    import numpy
    import torch
    from mmengine.logging import MMLogger
    from mmengine.registry import DefaultScope
    from mmengine.runner.checkpoint import CheckpointLoader

    state = {}
    registries(state)
    state['checkpoint schemes'] = {k: name_of(v) for k, v in CheckpointLoader._schemes.items()}
    state['file backends'] = {k: name_of(v) for k, v in backend_registry.backends.items()}
    state['file prefix backends'] = {k: name_of(v) for k, v in backend_registry.prefix_to_backends.items()}
    state['FileClient backends'] = {k: name_of(v) for k, v in fileio.FileClient._backends.items()}
    state['FileClient prefix backends'] = {k: name_of(v) for k, v in fileio.FileClient._prefix_to_backends.items()}
    state['config packages'] = dict(config_utils.MODULE2PACKAGE)
    from mmengine.analysis import complexity_analysis
    state['flop handles'] = {k: name_of(v) for k, v in complexity_analysis._DEFAULT_SUPPORTED_FLOP_OPS.items()}
    scope = DefaultScope.get_current_instance()
    state['default scope'] = {'current': None if scope is None else scope.scope_name}
    get_safe = getattr(torch.serialization, 'get_safe_globals', lambda: [])
    state['torch safe globals'] = {repr(g): 'safe' for g in get_safe()}
    state['torch settings'] = {'default dtype': str(torch.get_default_dtype()), 'threads': torch.get_num_threads(),
                               'deterministic': torch.are_deterministic_algorithms_enabled(),
                               'grad enabled': torch.is_grad_enabled()}
    state['warnings filters'] = {repr(f): 'present' for f in warnings.filters}
    state['warnings filters']['<order>'] = ' | '.join(map(repr, warnings.filters))
    loggers = {'<root>': logging.getLogger()}
    loggers.update({n: logging.getLogger(n) for n in list(logging.root.manager.loggerDict)
                    if n.split('.')[0] in ('mmengine', 'mmagic', 'mmcv', 'torch', 'numpy')})
    loggers.update({f'MMLogger {n}': lg for n, lg in MMLogger._instance_dict.items()})
    state['loggers'] = {n: f'level {lg.level} handlers {[name_of(h) for h in lg.handlers]} propagate '
                           f'{lg.propagate}' for n, lg in loggers.items() if isinstance(lg, logging.Logger)}
    state['numpy names'] = {k: 'present' for k in vars(numpy)}
    state['environment'] = dict(os.environ)
    return state


for name in json.loads(sys.stdin.read()):
    if name in sys.modules:
        continue
    try:
        importlib.import_module(name)
    except Exception:  # noqa: BLE001 - a module that cannot be imported on its own is imported by panet_mm
        pass
before = snapshot()
import panet_mm  # noqa: E402,F401
from panet_mm.utils.compat import NUMPY_REMOVED_ALIASES  # noqa: E402
import numpy  # noqa: E402
after = snapshot()
print(json.dumps(dict(before=before, after=after, numpy2=int(numpy.__version__.split('.')[0]) >= 2,
                      aliases=sorted(NUMPY_REMOVED_ALIASES))))
'''


def _run(code, stdin=''):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get('PYTHONPATH', ''))
    proc = subprocess.run([sys.executable, '-c', code], cwd=ROOT, env=env, input=stdin, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _panet_mm_owned(section, key, value, numpy2, aliases):
    if section == 'numpy names':
        return numpy2 and key in aliases
    if section.startswith('registry ') and '/panet_mm' in section:
        return True
    return key == 'panet_mm' or key.startswith('panet_mm') or str(value).startswith('panet_mm.')


def test_import_changes_nothing_but_registrations():
    others = _run(_LIST_MODULES)
    result = _run(_SNAPSHOT, json.dumps(others))
    before, after = result['before'], result['after']
    changed, added = [], []
    for section in sorted(set(before) | set(after)):
        old, new = before.get(section), after.get(section, {})
        if old is None:
            old = {}
            if not _panet_mm_owned(section, '', '', False, []):
                changed.append(f'{section}: a new section')
        for key in sorted(set(old) | set(new)):
            if key not in new:
                changed.append(f'{section}: {key} removed (was {old[key]})')
            elif key not in old:
                if not _panet_mm_owned(section, key, new[key], result['numpy2'], result['aliases']):
                    added.append(f'{section}: {key} = {new[key]} added')
            elif old[key] != new[key]:
                changed.append(f'{section}: {key} changed from {old[key]} to {new[key]}')
    assert not changed and not added, 'importing panet_mm changed:\n' + '\n'.join(changed + added)
    registered = after['registry MODELS:mmengine/mmagic']
    assert registered['PANet'].startswith('panet_mm.'), registered.get('PANet')
