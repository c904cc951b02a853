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


def test_console_scripts_name_themselves_in_usage(capsys, monkeypatch):
    """panet-restore --help said 'usage: restore.py', and its errors 'restore.py: error: ...'."""
    monkeypatch.setattr(sys, 'argv', ['panet-convert', '--help'])
    assert tools_entry.convert() == 0
    assert capsys.readouterr().out.startswith('usage: panet-convert ')


def test_python_m_panet_mm_runs_the_commands(capsys):
    """python -m panet_mm said "No module named panet_mm.__main__" (an install without bin/ on PATH)."""
    import subprocess

    from panet_mm.__main__ import main
    assert main([]) == 0 and 'python -m panet_mm {train,test,restore,convert}' in capsys.readouterr().out
    assert main(['convert', '--help']) == 0
    assert capsys.readouterr().out.startswith('usage: python -m panet_mm convert ')
    assert main(['tarin']) == 2 and "unknown command 'tarin'" in capsys.readouterr().err
    proc = subprocess.run([sys.executable, '-m', 'panet_mm', 'restore', '--help'], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout.startswith('usage: python -m panet_mm restore ')
