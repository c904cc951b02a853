"""panet_mm.tools_entry: the panet-* console scripts run the repository's tools with their exit statuses."""
import os.path as osp
import sys

from conftest import ROOT

from panet_mm import tools_entry


def test_tools_are_found_in_the_checkout_without_mim():
    for name, script in tools_entry.TOOLS.items():
        assert tools_entry.tool_path(name) == osp.join(ROOT, 'tools', script)


def test_run_tool_passes_arguments_and_exit_statuses(capsys):
    argv, path = list(sys.argv), list(sys.path)
    assert tools_entry.run_tool('convert', ['--help']) == 0
    assert 'usage: convert_official_ckpt.py' in capsys.readouterr().out
    # tools/train.py ends with SystemExit('config file ... not found'): status 1, the message on stderr
    assert tools_entry.run_tool('train', ['no_such_config.py']) == 1
    assert "config file 'no_such_config.py' not found" in capsys.readouterr().err
    # tools/model_converters/convert_official_ckpt.py returns 1 for a file it refuses
    assert tools_entry.run_tool('convert', ['no_such.pt', 'out.pth', '--arch', 'panet']) == 1
    assert sys.argv == argv and sys.path == path
