"""Case 1: an image declaring a huge size is refused from its header by every reader, never decoded."""
import resource
import sys

import cv2
import pytest
from conftest import DEMO_CONFIG, run_tool, write_tiny_images
from hostile_files import encode, jpeg_declaring, photo, png_bomb, png_declaring

from panet_mm.datasets import image_io
from panet_mm.datasets.image_io import (
    ImageFileError,
    PixelLimitError,
    check_image_file,
    default_max_pixels,
    imread_verified,
    read_image_header,
)


def test_header_sizes_of_real_encoder_output(tmp_path):
    png = tmp_path / 'a.png'
    png.write_bytes(encode(photo(36, 48), '.png'))
    assert read_image_header(str(png)) == (48, 36, 'PNG')
    jpg = tmp_path / 'a.jpg'
    jpg.write_bytes(jpeg_declaring(48, 36))  # SOF behind a 60 KB APP1 segment, as cameras write EXIF
    assert read_image_header(str(jpg)) == (48, 36, 'JPEG')
    bmp = tmp_path / 'a.bmp'
    cv2.imwrite(str(bmp), photo(20, 30))
    assert read_image_header(str(bmp))[:2] == (30, 20)  # through Pillow's lazy open


def test_small_limits_are_written_in_pixels(tmp_path):
    """``--max-pixels 10`` said '(0 MP), above the limit of 0 MP'."""
    png = tmp_path / 'a.png'
    png.write_bytes(encode(photo(40, 56), '.png'))
    with pytest.raises(PixelLimitError, match=r"declares 56x40 pixels \(2240 pixels\), above the limit of 10 pixels"):
        check_image_file(str(png), 10)
    big = tmp_path / 'big.png'
    big.write_bytes(png_declaring(4000, 3000))
    with pytest.raises(PixelLimitError, match=r"declares 4000x3000 pixels \(12 MP\), above the limit of 1.0 MP"):
        check_image_file(str(big), 1_000_000)


def test_default_limit_fits_the_memory_and_env_overrides(monkeypatch):
    monkeypatch.delenv(image_io.MAX_PIXELS_ENV, raising=False)
    limit = default_max_pixels()
    assert image_io.MIN_DEFAULT_PIXELS <= limit <= image_io.MAX_DEFAULT_PIXELS
    assert limit <= max(image_io.MIN_DEFAULT_PIXELS, image_io.memory_bytes() // image_io.BYTES_PER_PIXEL_BUDGET)
    monkeypatch.setenv(image_io.MAX_PIXELS_ENV, '1000')
    assert default_max_pixels() == 1000
    monkeypatch.setenv(image_io.MAX_PIXELS_ENV, 'lots')
    with pytest.raises(ValueError, match=image_io.MAX_PIXELS_ENV):
        default_max_pixels()


@pytest.mark.parametrize('make', [png_declaring, jpeg_declaring])
def test_refused_from_the_header_naming_file_size_and_option(tmp_path, make, monkeypatch):
    monkeypatch.delenv(image_io.MAX_PIXELS_ENV, raising=False)
    path = tmp_path / 'bomb.img'
    path.write_bytes(make(65000, 65000))  # 4.2 GP: above the default limit on any machine
    with pytest.raises(PixelLimitError) as err:
        check_image_file(str(path))
    text = str(err.value)
    assert str(path) in text and '65000x65000' in text and 'max_pixels' in text and '\n' not in text
    assert '--max-pixels' in err.value.for_cli({'max_pixels': '--max-pixels'})  # how a CLI names its flag


def test_a_real_bomb_is_not_decoded(tmp_path):
    path = tmp_path / 'bomb.png'
    path.write_bytes(png_bomb(20000, 20000))  # 400 MP of black in a file of a few hundred KB
    assert path.stat().st_size < 1_000_000
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(PixelLimitError, match='20000x20000'):
        imread_verified(str(path), max_pixels=10**6)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 100_000  # KB: nothing was allocated


def test_within_the_limit_it_reads(tmp_path):
    path = tmp_path / 'ok.png'
    path.write_bytes(encode(photo(36, 48), '.png'))
    assert imread_verified(str(path), max_pixels=48 * 36).shape == (36, 48, 3)
    with pytest.raises(PixelLimitError):
        imread_verified(str(path), max_pixels=48 * 36 - 1)


def test_dataset_refuses_a_bomb_before_decoding(tmp_path):
    from mmengine.registry import init_default_scope

    from panet_mm.datasets import CheckedImageDataset
    from panet_mm.datasets.checked_image_dataset import DataSampleError
    init_default_scope('mmagic')
    folder = write_tiny_images(tmp_path / 'gt')
    (folder / 'img_2.png').write_bytes(png_declaring(30000, 30000))
    ds = CheckedImageDataset(data_root=str(folder), data_prefix=dict(gt=''), max_pixels=10**8,
                             pipeline=[dict(type='LoadImageFromFile', key='gt')])
    errors = []
    for i in range(len(ds)):
        try:
            ds[i]
        except DataSampleError as err:
            errors.append(err)
    assert len(errors) == 1 and isinstance(errors[0].__cause__, PixelLimitError)
    assert '30000x30000' in str(errors[0]) and 'max_pixels=N in the dataset config' in str(errors[0])


def test_restore_tool_refuses_the_bomb_and_restores_the_rest(tmp_path, demo_checkpoint):
    src = tmp_path / 'in'
    src.mkdir()
    cv2.imwrite(str(src / 'a.png'), photo(24, 24))
    (src / 'b.png').write_bytes(png_declaring(30000, 30000))
    out = tmp_path / 'out'
    proc = run_tool([sys.executable, 'tools/restore.py', str(src), str(out), '--config', DEMO_CONFIG,
                     '--checkpoint', str(demo_checkpoint), '--device', 'cpu', '--no-progress',
                     '--max-pixels', str(10**8)], check=False)
    assert proc.returncode == 1, proc.stderr
    assert '30000x30000' in proc.stderr and '--max-pixels' in proc.stderr and 'Traceback' not in proc.stderr
    assert sorted(p.name for p in out.iterdir()) == ['a.png']


def test_prepare_tools_refuse_the_bomb(tmp_path):
    src = write_tiny_images(tmp_path / 'clean')
    (src / 'img_2.png').write_bytes(png_declaring(30000, 30000))
    out = tmp_path / 'data'
    proc = run_tool([sys.executable, 'tools/dataset_converters/prepare_testsets.py',
                     '--out', str(out), '--set5', str(src),
                     '--workers', '1', '--max-pixels', str(10**8)], check=False)
    assert proc.returncode == 1 and 'Traceback' not in proc.stderr
    assert '30000x30000' in proc.stderr and '--max-pixels' in proc.stderr
    assert not (out / 'Set5' / 'GTmod12' / 'img_2.png').exists()


def test_unknown_and_empty_files_are_not_images(tmp_path):
    junk = tmp_path / 'junk.png'
    junk.write_bytes(b'not an image at all')
    with pytest.raises(ImageFileError, match='not an image file of a known format'):
        read_image_header(str(junk))
    empty = tmp_path / 'empty.png'
    empty.write_bytes(b'')
    with pytest.raises(ImageFileError, match=r'is empty \(0 bytes\)'):
        read_image_header(str(empty))
