"""panet_mm.utils.checkpoint: weights-only loading, unwrapping, comparing and listing state dicts."""
import os.path as osp
import pickle

import pytest
import torch
from torch import nn

from panet_mm.utils.checkpoint import (
    StateDictError,
    UnsafeCheckpointError,
    compare_state_dicts,
    first_conv_in_channels,
    list_keys,
    load_weights_only,
    unwrap_state_dict,
)
from panet_mm.utils.errors import PanetMMError

PHOTO = osp.join(osp.dirname(osp.dirname(__file__)), 'data', 'exif', 'flower.jpg')


class Exploit:

    def __reduce__(self):
        return (print, ('owned', ))


def _safetensors(path):
    from safetensors.torch import save_file
    save_file({'w': torch.ones(2)}, str(path))


@pytest.mark.parametrize('name,make,says', [
    ('notes.pth', lambda p: p.write_text('hello\n'), 'it is a text file'),
    ('config.pth', lambda p: p.write_text('{"a": 1}\n'), 'it is a JSON file'),
    ('photo.pth', lambda p: p.write_bytes(open(PHOTO, 'rb').read()), 'it is a JPEG image'),
    ('page.pth', lambda p: p.write_text('<!DOCTYPE html>\n<html><body>Sign in</body></html>'),
     'it is an HTML / XML page (a download that returned a web page'),
    ('empty.pth', lambda p: p.write_bytes(b''), 'it is empty (0 bytes)'),
    ('model.safetensors', _safetensors, 'it is a safetensors file; load it with safetensors.torch.load_file'),
    ('lfs.pth', lambda p: p.write_text('version https://git-lfs.github.com/spec/v1\noid sha256:0\nsize 9\n'),
     'it is a Git LFS pointer'),
    ('noise.pth', lambda p: p.write_bytes(bytes(range(1, 256)) * 8),
     "its first bytes are neither a zip archive's (torch.save) nor a pickle's"),
])
def test_files_that_are_no_checkpoint_are_named_as_what_they_are(tmp_path, name, make, says):
    """Such files failed deep in torch's unpickler (``KeyError: 101`` for a text file, a traceback) or read as
    refused Python objects (a JSON file: "never unpickles objects that could run code")."""
    path = tmp_path / name
    make(path)
    with pytest.raises(UnsafeCheckpointError) as err:
        load_weights_only(path)
    assert str(err.value).startswith(f"checkpoint '{path}' is not a PyTorch checkpoint: {says}")


def test_a_folder_is_named_as_a_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="is a folder; pass a .pth file in it"):
        load_weights_only(tmp_path)


def test_load_weights_only_refuses_objects_and_garbage(tmp_path):
    torch.save({'state_dict': {'w': torch.ones(2)}, 'meta': {'seed': 0}}, tmp_path / 'ok.pth')
    assert load_weights_only(tmp_path / 'ok.pth')['meta'] == {'seed': 0}
    torch.save({'x': Exploit()}, tmp_path / 'bad.pth')
    with pytest.raises(UnsafeCheckpointError, match='weights-only loader refuses') as err:
        load_weights_only(tmp_path / 'bad.pth')
    assert isinstance(err.value, pickle.UnpicklingError) and isinstance(err.value, PanetMMError)
    data = (tmp_path / 'ok.pth').read_bytes()
    (tmp_path / 'cut.pth').write_bytes(data[:len(data) // 2])  # a download cut short
    with pytest.raises(UnsafeCheckpointError, match='cannot be read.*truncated'):
        load_weights_only(tmp_path / 'cut.pth')
    with pytest.raises(FileNotFoundError):
        load_weights_only(tmp_path / 'missing.pth')


STATE = {'head.weight': torch.zeros(2, 3), 'head.bias': torch.zeros(2)}


@pytest.mark.parametrize('key', ['state_dict', 'model_state_dict', 'model', 'params_ema', 'params', 'net'])
def test_unwrap_each_wrapper(key):
    got = unwrap_state_dict({key: STATE, 'meta': {'epoch': 3}, 'optimizer': {'lr': 0.1}})
    assert list(got) == ['head.weight', 'head.bias'] and got['head.weight'] is STATE['head.weight']


def test_unwrap_nested_prefixes_and_selected_prefix():
    wrapped = {'model': {'state_dict': {f'module.model.{k}': v for k, v in STATE.items()}}}
    assert list(unwrap_state_dict(wrapped)) == list(STATE)
    assert list(unwrap_state_dict({f'module.{k}': v for k, v in STATE.items()}, strip=('model.', ))) == \
        [f'module.{k}' for k in STATE]  # only the prefixes asked for
    edit = {'generator.a': torch.ones(1), 'generator.b': torch.ones(1), 'data_preprocessor.mean': torch.ones(3)}
    assert list(unwrap_state_dict({'state_dict': edit}, prefix='generator.')) == ['a', 'b']


@pytest.mark.parametrize('key', ['state_dict', 'model', 'params'])
def test_unwrap_keeps_torch_metadata(key):
    """torch's per-module versions survive any wrapper and are re-keyed with the stripped prefixes."""
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 1), torch.nn.BatchNorm2d(2))
    edit = torch.nn.Module()
    edit.generator = torch.nn.Module()
    edit.generator.module = net
    state = edit.state_dict()
    got = unwrap_state_dict({key: state}, prefix='generator.', strip=('module.', ))
    assert list(got) == list(net.state_dict())
    assert got._metadata == net.state_dict()._metadata      # '' , '0', '1' with BatchNorm's version 2
    assert got._metadata['1']['version'] == 2
    fresh = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 1), torch.nn.BatchNorm2d(2))
    fresh.load_state_dict(got)      # the version is read: no 'num_batches_tracked' upgrade path taken


@pytest.mark.parametrize('obj, match', [
    ([torch.ones(1)], 'holds list, not a state dict'),
    ({}, 'holds dict, not a state dict'),
    ({'state_dict': {'w': torch.ones(1), 'step': 3}}, r'non-tensor state dict entries \(step\)'),
])
def test_unwrap_refusals_name_the_source(obj, match):
    with pytest.raises(StateDictError, match=match) as err:
        unwrap_state_dict(obj, source='x.pth')
    assert "'x.pth'" in str(err.value) and '\n' not in str(err.value)
    with pytest.raises(KeyError):  # a caller's own error class
        unwrap_state_dict(obj, error=KeyError)
    with pytest.raises(StateDictError, match="no keys under the prefix 'generator.'"):
        unwrap_state_dict(STATE, prefix='generator.')


def test_compare_and_list():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    expected = model.state_dict()
    assert compare_state_dicts(expected, expected).ok
    given = {k: v for k, v in expected.items() if 'num_batches_tracked' not in k}  # torch fills it in
    assert compare_state_dicts(expected, given).ok
    given['0.weight'] = torch.zeros(4, 1, 3, 3)
    del given['1.bias']
    given['2.weight'] = torch.zeros(1)
    diff = compare_state_dicts(expected, given)
    assert not diff.ok
    assert diff.missing == ['1.bias'] and diff.unexpected == ['2.weight']
    assert diff.mismatched == [('0.weight', (4, 3, 3, 3), (4, 1, 3, 3))]
    assert diff.counts() == '1 missing, 1 unexpected, 1 mis-shaped'
    assert diff.lines() == ['missing (1): 1.bias', 'unexpected (1): 2.weight',
                            'mis-shaped (1): 0.weight (4, 1, 3, 3) vs model (4, 3, 3, 3)']
    keys = [f'k{i}' for i in range(27)]
    assert list_keys(keys).endswith('k11, ... (15 more)') and list_keys(keys[:3]) == 'k0, k1, k2'
    assert list_keys(keys, limit=2) == 'k0, k1, ... (25 more)'


def test_first_conv_in_channels():
    assert first_conv_in_channels(nn.Sequential(nn.ReLU(), nn.Conv2d(1, 8, 3), nn.Conv2d(8, 3, 3))) == 1
    assert first_conv_in_channels(nn.Linear(2, 2)) is None


def test_checkpoint_task_settings_from_the_saved_config_or_the_released_name():
    """A q10 / sigma-30 model has the shapes of the q40 / sigma-50 one: only the checkpoint's meta tells them apart."""
    from panet_mm.utils.checkpoint import checkpoint_task_settings
    saved = "model = dict(type='PANetEditModel')\nquality = 10\nsigma = None\nname = 'x'\nscale = __import__('os')\n"
    assert checkpoint_task_settings({'cfg': saved}) == {'quality': 10}  # literals only: nothing is run
    assert checkpoint_task_settings({'source': 'model_N30.pt', 'arch': 'panet'}) == {'sigma': 30}
    assert checkpoint_task_settings({'source': 'Q40.pt'}) == {'quality': 40}
    assert checkpoint_task_settings({'source': 'model_x3.pt'}) == {'scale': 3}
    assert checkpoint_task_settings({'source': 'model_best.pt'}) == {'pattern': 'GRBG'}  # the demosaicing model
    assert checkpoint_task_settings({'source': 'my_model.pt'}) == {}
    assert checkpoint_task_settings(None) == {} and checkpoint_task_settings({'cfg': 3}) == {}

