"""panet_mm.datasets.CheckedImageDataset: what mmagic's BasicImageDataset does, independent of the current folder."""
import cv2
import numpy as np
import pytest
from conftest import ROOT
from mmengine.registry import init_default_scope

from panet_mm.datasets import CheckedImageDataset


def dataset(root, metainfo):
    for sub in ('lq', 'gt'):
        (root / sub).mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / sub / 'a.png'), np.full((8, 8, 3), 128, np.uint8))
    return CheckedImageDataset(data_root=str(root), data_prefix=dict(img='lq', gt='gt'), metainfo=metainfo,
                               pipeline=[])


def test_metainfo_values_are_taken_as_written_whatever_the_current_folder_holds(tmp_path, monkeypatch, caplog):
    """mmengine reads a metainfo string naming an existing path as a file: training stopped with
    IsADirectoryError next to a 'div2k/' folder, and a file 'set5' became the metadata."""
    init_default_scope('mmagic')
    monkeypatch.chdir(tmp_path)
    (tmp_path / 'div2k').mkdir()
    (tmp_path / 'set5').write_text('baby\nbird\n')
    ds = dataset(tmp_path / 'data', dict(dataset_type='div2k', task_name='set5', scale=2))
    assert ds.metainfo == dict(dataset_type='div2k', task_name='set5', scale=2) and len(ds) == 1
    assert 'is not a meta file' not in caplog.text


def test_a_missing_relative_folder_names_the_folder_it_is_relative_to(tmp_path, monkeypatch):
    """Run from another folder, 'data/demo/...' does not exist there although it does in the checkout."""
    init_default_scope('mmagic')
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError) as err:
        CheckedImageDataset(data_root='data/demo/DIV2K', data_prefix=dict(img='lq', gt='gt'), pipeline=[],
                            prepare_cmd='python tools/dataset_converters/make_demo_data.py')
    assert str(err.value) == (
        f"dataset 'basic_image_dataset': folder 'data/demo/DIV2K/lq' (data_prefix['img']) does not exist in "
        f'{tmp_path} (data_root is relative to the current folder); prepare it with: '
        f'python {ROOT}/tools/dataset_converters/make_demo_data.py')  # the script's path from here


@pytest.mark.parametrize('lq_size, folder_advice', [((16, 16), True), ((20, 16), False)])
def test_lr_of_another_scale_blames_the_folder_and_a_misfit_file_the_file(tmp_path, lq_size, folder_advice):
    """LR images 1/3 of their GT in an x2 pipeline: the folder holds another scale (replacing the file, and resuming,
    would be the wrong advice); an LR of no whole scale is one bad file."""
    from panet_mm.datasets.checked_image_dataset import DataSampleError
    init_default_scope('mmagic')
    for sub, (h, w) in (('gt', (48, 48)), ('lq', lq_size)):
        (tmp_path / sub).mkdir()
        cv2.imwrite(str(tmp_path / sub / 'a.png'), np.full((h, w, 3), 128, np.uint8))
    pipeline = [dict(type='LoadImageFromFile', key='img'), dict(type='LoadImageFromFile', key='gt'),
                dict(type='SetValues', dictionary=dict(scale=2)), dict(type='PairedRandomCrop', gt_patch_size=16)]
    ds = CheckedImageDataset(data_root=str(tmp_path), data_prefix=dict(img='lq', gt='gt'), pipeline=pipeline)
    with pytest.raises(DataSampleError) as err:
        ds.prepare_data(0)
    text = str(err.value)
    assert ("1/3 of its 48x48 GT, but the pipeline crops for scale 2: data_prefix['img'] "
            f"('{tmp_path}/lq') holds x3 images" in text) == folder_advice, text
    assert ('replace or remove this file' in text) != folder_advice, text


@pytest.mark.parametrize('cmd, data_root, expected', [
    ('python tools/dataset_converters/make_demo_data.py', 'data/demo/DIV2K',
     'python tools/dataset_converters/make_demo_data.py'),
    ('python tools/dataset_converters/make_demo_data.py', '/data/mine/DIV2K',
     'python tools/dataset_converters/make_demo_data.py --out /data/mine'),
    ('python tools/dataset_converters/prepare_testsets.py --set5 PATH/TO/Set5/HR (README)', '/sets/Set5',
     'python tools/dataset_converters/prepare_testsets.py --out /sets --set5 PATH/TO/Set5/HR (README)'),
    ('python tools/dataset_converters/prepare_testsets.py --set5 PATH/TO/Set5/HR', 'data/Set5',
     'python tools/dataset_converters/prepare_testsets.py --set5 PATH/TO/Set5/HR'),
    ('python tools/dataset_converters/prepare_div2k.py --div2k data/DIV2K (README)', '/big/DIV2K',
     'python tools/dataset_converters/prepare_div2k.py --div2k /big/DIV2K (README)'),
    ('python x.py --out here', '/else/where', 'python x.py --out here'),
])
def test_the_prepare_hint_writes_where_the_config_reads(cmd, data_root, expected):
    """With data_root pointed elsewhere, 'make_demo_data.py' (writing to data/demo) was the hint, and the run still
    found nothing."""
    from panet_mm.datasets.checked_image_dataset import command_for_root
    assert command_for_root(cmd, data_root) == expected
