"""panet_mm.utils.fileio: atomic writes of bytes, text, images and checkpoints."""
import errno
import os
from unittest import mock

import cv2
import numpy as np
import pytest
import torch

from panet_mm.utils.fileio import (
    ImageEncodeError,
    atomic_save_checkpoint,
    atomic_write,
    atomic_write_image,
    current_umask,
    existing_folder,
    probe_writable,
    temp_file_target,
)


def test_writes_with_plain_permissions_and_creates_the_folder(tmp_path):
    path = tmp_path / 'a' / 'b' / 'meta.txt'
    atomic_write(path, 'héllo\n')
    assert path.read_bytes() == 'héllo\n'.encode()
    assert path.stat().st_mode & 0o777 == 0o666 & ~current_umask()  # not mkstemp's 0o600
    atomic_write(str(path), 'x', encoding='latin-1')
    atomic_write(path, b'\x00\x01')
    assert path.read_bytes() == b'\x00\x01' and os.listdir(path.parent) == ['meta.txt']


@pytest.mark.parametrize('fail_at', ['os.fsync', 'os.replace'])
def test_failure_midway_keeps_the_target_and_leaves_no_temporary_file(tmp_path, fail_at):
    path = tmp_path / 'iter_2.pth'
    atomic_write(path, b'old complete file')
    with mock.patch(fail_at, side_effect=OSError(errno.ENOSPC, 'No space left on device')):
        with pytest.raises(OSError) as err:
            atomic_write(path, b'new' * 1000)
    assert err.value.filename == str(path)  # a full disk names the file it was writing
    assert path.read_bytes() == b'old complete file'
    assert os.listdir(tmp_path) == ['iter_2.pth']


def test_interrupt_leaves_no_temporary_file(tmp_path):
    with mock.patch('os.replace', side_effect=KeyboardInterrupt):
        with pytest.raises(KeyboardInterrupt):
            atomic_write(tmp_path / 'new.bin', b'data')
    assert os.listdir(tmp_path) == []


def test_temporary_names_are_recognised(tmp_path):
    seen = []

    def spy(src, dst):
        seen.append(os.path.basename(src))
        raise OSError('stop')

    with mock.patch('os.replace', side_effect=spy), pytest.raises(OSError):
        atomic_write(tmp_path / 'iter_4.pth', b'x')
    assert temp_file_target(seen[0]) == 'iter_4.pth'
    assert temp_file_target('.astronaut.png.123.abcd.tmp') == 'astronaut.png'  # older writers' names
    assert temp_file_target('.iter_4.pth.short.tmp') is None and temp_file_target('mine.tmp') is None


def test_image_round_trip_params_and_unknown_extension(tmp_path):
    img = np.random.default_rng(0).integers(0, 256, (6, 7, 3), dtype=np.uint8)
    path = tmp_path / 'out' / 'a.PNG'
    atomic_write_image(path, img, [cv2.IMWRITE_PNG_COMPRESSION, 9])
    np.testing.assert_array_equal(cv2.imread(str(path), cv2.IMREAD_UNCHANGED), img)
    with pytest.raises(ImageEncodeError, match=r"could not encode an image of shape \(6, 7, 3\).*'\.xyz'.*\.png"):
        atomic_write_image(tmp_path / 'b.xyz', img)
    assert sorted(p.name for p in tmp_path.rglob('*')) == ['a.PNG', 'out']


def test_checkpoint_loads_weights_only_and_failure_keeps_the_old_one(tmp_path):
    path = tmp_path / 'ckpt.pth'
    atomic_save_checkpoint({'state_dict': {'w': torch.arange(3.)}}, path)
    assert torch.equal(torch.load(path, weights_only=True)['state_dict']['w'], torch.arange(3.))
    before = path.read_bytes()
    with mock.patch('os.fsync', side_effect=OSError(errno.EIO, 'I/O error')), pytest.raises(OSError):
        atomic_save_checkpoint({'state_dict': {'w': torch.zeros(3)}}, path)
    assert path.read_bytes() == before and os.listdir(tmp_path) == ['ckpt.pth']


def test_an_errno_less_error_keeps_its_message(tmp_path):
    with mock.patch('os.replace', side_effect=OSError('disk full')), pytest.raises(OSError, match='^disk full$'):
        atomic_write(tmp_path / 'a.txt', 'x')
    assert os.listdir(tmp_path) == []


def test_existing_folder_is_where_a_missing_path_would_start(tmp_path):
    assert existing_folder(tmp_path) == str(tmp_path)
    assert existing_folder(tmp_path / 'a' / 'b' / 'c.png') == str(tmp_path)
    (tmp_path / 'file').write_text('x')
    assert existing_folder(tmp_path / 'file' / 'sub' / 'c.png') == str(tmp_path / 'file')  # a file in the way


def test_probe_writable_names_the_reason_and_leaves_nothing(tmp_path):
    assert probe_writable(tmp_path) is None and list(tmp_path.iterdir()) == []
    assert probe_writable(tmp_path / 'missing') == 'No such file or directory'
    real = os.open

    def read_only(path, *args, **kwargs):
        if str(path).startswith(str(tmp_path)):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), path)
        return real(path, *args, **kwargs)

    with mock.patch('os.open', read_only):
        assert probe_writable(tmp_path) == 'Read-only file system'
