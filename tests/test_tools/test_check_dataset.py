"""tools/analysis_tools/check_dataset.py: a config's datasets checked sample by sample, every problem listed."""
import shutil
import sys

from conftest import DEMO_CONFIG, run_tool

TOOL = 'tools/analysis_tools/check_dataset.py'


def test_clean_demo_data_passes(demo_root):
    proc = run_tool([sys.executable, TOOL, DEMO_CONFIG, '--jobs', '2', '--cfg-options',
                     f'train_dataloader.dataset.data_root={demo_root}/DIV2K',
                     f'val_dataloader.dataset.data_root={demo_root}/Set5',
                     f'test_dataloader.dataset.data_root={demo_root}/Set5'])
    lines = proc.stdout.splitlines()
    assert lines[0].startswith(f"train: CheckedImageDataset 'div2k' at {demo_root}/DIV2K, ")
    assert 'train: every sample loads' in lines and 'val, test: every sample loads' in lines  # Set5 checked once
    assert lines[-1].startswith('all ') and lines[-1].endswith(' samples load')


def test_every_problem_is_listed_and_the_status_is_1(demo_root, tmp_path):
    set5 = tmp_path / 'Set5'
    shutil.copytree(demo_root / 'Set5', set5)
    damaged = set5 / 'LRbicx2' / 'coffee.png'
    damaged.write_bytes(damaged.read_bytes()[:200])
    proc = run_tool([sys.executable, TOOL, DEMO_CONFIG, '--split', 'train', 'test', '--cfg-options',
                     f'train_dataloader.dataset.data_root={tmp_path}/no_DIV2K',
                     f'test_dataloader.dataset.data_root={set5}'], check=False)
    assert proc.returncode == 1, proc.stderr
    out = proc.stdout
    assert "train: cannot be built: dataset 'div2k': folder" in out and 'no_DIV2K' in out   # and the check went on
    assert f"its img file '{damaged}' is truncated or corrupt" in out and 'test: 1 of 5 samples fail' in out
    assert not any(line.startswith('val') for line in out.splitlines())                   # --split: not checked
    assert out.splitlines()[-1] == (
        '1 dataset(s) could not be built: prepare them as the lines above say; 1 problem(s) in 5 samples checked: '
        'replace or remove the files named above (and their lines in the meta-info file, where the dataset has one); '
        'then check again')
