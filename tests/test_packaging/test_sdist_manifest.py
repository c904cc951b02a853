"""MANIFEST.in: the sdist carries every local file the README links to (ARCHITECTURE.md was left out)."""
import os.path as osp
import re

from conftest import ROOT


def manifest_covers(path, lines):
    for line in lines:
        words = line.split()
        if not words:
            continue
        if words[0] == 'include' and path in words[1:]:
            return True
        if words[0] in ('graft', 'recursive-include') and path.startswith(words[1].rstrip('/') + '/'):
            return True
    return False


def test_every_file_the_readme_links_to_is_in_the_sdist():
    with open(osp.join(ROOT, 'README.md')) as f:
        readme = f.read()
    with open(osp.join(ROOT, 'MANIFEST.in')) as f:
        lines = [ln for ln in f.read().splitlines() if not ln.startswith('#')]
    targets = {m.split('#')[0] for m in re.findall(r'\]\(([^)\s]+)\)', readme)}
    local = sorted(t for t in targets if t and '://' not in t and osp.isfile(osp.join(ROOT, t)))
    assert 'ARCHITECTURE.md' in local
    missing = [t for t in local if not manifest_covers(t, lines)]
    assert not missing, f'README links to files MANIFEST.in leaves out of the sdist: {missing}'
