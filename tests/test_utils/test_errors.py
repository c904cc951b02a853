"""panet_mm.utils.errors: the base class, parameter errors that CLIs reword, first lines."""
import pickle

import pytest

from panet_mm.utils.errors import PanetMMError, ParameterError, cli_message, first_line


def test_parameter_error_names_the_parameter_or_the_flag():
    err = ParameterError('max_pixels', "'a.png' declares 9 pixels; raise {param} to at least 9 {not a field}")
    assert str(err) == "'a.png' declares 9 pixels; raise max_pixels to at least 9 {not a field}"
    assert err.for_cli({'max_pixels': '--max-pixels'}) == \
        "'a.png' declares 9 pixels; raise --max-pixels to at least 9 {not a field}"
    assert err.for_cli({'other': '--other'}) == str(err)  # unmapped: the parameter name
    assert ParameterError('scale', 'bad {param}', flag='--scale').for_cli() == 'bad --scale'
    assert cli_message(err, {'max_pixels': '-m'}).endswith('raise -m to at least 9 {not a field}')
    assert cli_message(ValueError('plain'), {'max_pixels': '-m'}) == 'plain'


def test_every_error_is_a_value_error_and_survives_pickling():
    err = ParameterError('scale', 'scale {param} is 0', flag='--scale')
    assert isinstance(err, PanetMMError) and isinstance(err, ValueError)
    back = pickle.loads(pickle.dumps(err))  # errors cross worker processes
    assert type(back) is ParameterError and str(back) == str(err) and back.for_cli() == 'scale --scale is 0'
    with pytest.raises(PanetMMError, match='scale is 0'):
        raise err


def test_first_line():
    assert first_line(RuntimeError('first\nsecond')) == 'first'
    assert first_line(KeyError()) == 'KeyError'
    assert first_line(ValueError('x' * 500)) == 'x' * 300
    assert first_line(ValueError('x' * 500), limit=20) == 'x' * 20
    text = 'Weights only load failed.\nPlease...\nWeightsUnpickler error: Unsupported global: os.system\nmore'
    assert first_line(pickle.UnpicklingError(text)) == 'Unsupported global: os.system'
