"""tools/analysis_tools/get_flops.py, and mmagic's own get_flops, on PANet and PA-EDSR: the attention is counted.

mmagic's tool runs in a subprocess that imports panet_mm only through the config's custom_imports; its
per-module table must give each pyramid attention block what the block's macs() says.
"""
import os.path as osp
import re
import sys

import mmagic
import pytest
from conftest import ROOT, run_tool
from mmengine.config import Config

from panet_mm.models.layers import PyramidAttention

pytestmark = pytest.mark.usefixtures('one_thread')

TOOL = osp.join(ROOT, 'tools', 'analysis_tools', 'get_flops.py')
MMAGIC_TOOL = osp.join(osp.dirname(mmagic.__file__), '.mim', 'tools', 'analysis_tools', 'get_flops.py')
UNITS = {'': 1, 'K': 1e3, 'M': 1e6, 'G': 1e9, 'T': 1e12}


def get_flops(*args, check=True):
    """The tool in a subprocess, as ``python tools/analysis_tools/get_flops.py ARGS`` runs it."""
    return run_tool([sys.executable, TOOL, *args], check=check, env={'OMP_NUM_THREADS': '1'})


def number(text):
    m = re.fullmatch(r'([\d.]+)([KMGT]?)', text.strip())
    return float(m.group(1)) * UNITS[m.group(2)]


def attention_of(config):
    """(module name, block) of the config generator's one pyramid attention block, built from the config."""
    gen = Config.fromfile(osp.join(ROOT, config), import_custom_modules=False).model.generator
    index = gen.num_blocks // 2
    return f'body.{index}', PyramidAttention(channels=gen.mid_channels, **gen.attention_cfg)


@pytest.mark.parametrize('config', ['configs/demo/panet_dn_sigma30_demo.py', 'configs/demo/panet_sr_x2_demo.py'])
def test_ours_reports_the_block_macs(config):
    proc = get_flops(osp.join(ROOT, config), '--shape', '20', '14')
    assert proc.returncode == 0
    out = proc.stdout
    name, block = attention_of(config)
    m = re.search(rf'Pyramid attention {re.escape(name)} \(input (\d+)x20x14\): (\S+) counted, (\S+) by its macs\(\)',
                  out)
    assert m, out
    assert int(m.group(1)) == block.channels and m.group(2) == m.group(3)
    assert number(m.group(2)) == pytest.approx(block.macs(20, 14), rel=1e-3)
    assert 'Generator: ' in out and 'Parameters: ' in out and 'upsample_bicubic2d' in out   # skipped ops named


def test_the_readme_command_on_the_paper_pa_edsr():
    """README "Parameters and multiply-adds": the full PA-EDSR x2 at 48x48 runs its attention in several chunks
    of the 'pixel' formulation under the tracer (it once stopped there), and gives the README's numbers."""
    out = get_flops(osp.join(ROOT, 'configs/panet_sr_x2_div2k.py'), '--shape', '48', '48').stdout
    assert 'FLOPs (multiply-adds): 99.374G' in out and 'Parameters: 40.812M' in out
    assert 'Pyramid attention body.16 (input 256x48x48): 5.526G counted, 5.526G by its macs()' in out


def test_ours_refuses_bad_shapes():
    proc = get_flops(osp.join(ROOT, 'configs/demo/panet_sr_x2_demo.py'), '--shape', '1', '2', '3', '4', check=False)
    assert proc.returncode == 2   # argparse's error status (SystemExit(2))
    assert '--shape takes H W or C H W' in proc.stderr
    proc = get_flops('configs/no_such_config.py', check=False)
    assert proc.returncode == 2
    assert "config file 'configs/no_such_config.py' not found" in proc.stderr
    demo = osp.join(ROOT, 'configs/demo/panet_sr_x2_demo.py')
    proc = get_flops(demo, '--shape', '1', '16', '16', check=False)  # was torch's "expected input ... 3 channels"
    assert proc.returncode == 1 and 'Traceback' not in proc.stderr
    assert 'takes 3 input channel(s), not 1; pass --shape 3 16 16 or just H W' in proc.stderr
    checkpoint = osp.join(ROOT, 'tests', 'data', 'exif', 'README.md')  # any file that is not a config
    proc = get_flops(checkpoint, check=False)  # was mmengine's "Only py/yml/yaml/json type are supported" traceback
    assert proc.returncode == 1 and f"config '{checkpoint}' is not a config file (.py, .yml" in proc.stderr


@pytest.mark.slow
@pytest.mark.parametrize('config', ['configs/panet_dn_sigma30_div2k.py', 'configs/panet_sr_x2_div2k.py'])
def test_mmagic_get_flops_counts_the_attention(config, tmp_path):
    """The full PANet (80 blocks) and PA-EDSR (256 channels) configs through mmagic's unmodified tool."""
    h, w = 24, 20
    proc = run_tool([sys.executable, MMAGIC_TOOL, osp.join(ROOT, config), '--shape', '3', str(h), str(w),
                     '--out-table'], cwd=str(tmp_path))
    name, block = attention_of(config)
    row = re.search(rf'^\|\s+{re.escape(name)}\s+\|\s*(\S+)\s*\|\s*(\S+)\s*\|', proc.stdout, re.M)
    assert row, proc.stdout[-3000:]
    assert number(row.group(2)) == pytest.approx(block.macs(h, w), rel=0.01)
    total = re.search(r'^Flops: (\S+)', proc.stdout, re.M)
    assert number(total.group(1)) > number(row.group(2))
    assert 'Traceback' not in proc.stderr
    # ours on the same config agrees
    ours = run_tool([sys.executable, TOOL, osp.join(ROOT, config), '--shape', str(h), str(w)], cwd=str(tmp_path))
    m = re.search(rf'Pyramid attention {re.escape(name)} \(input \d+x{h}x{w}\): (\S+) counted', ours.stdout)
    assert number(m.group(1)) == pytest.approx(block.macs(h, w), rel=0.01)
    assert number(re.search(r'FLOPs \(multiply-adds\): (\S+)', ours.stdout).group(1)) == pytest.approx(
        number(total.group(1)), rel=0.01)
