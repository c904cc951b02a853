"""WithPyramidAttention: positions, names, forward path, plain-weight loading, errors, copies, DDP."""
import copy
import io
import pickle
import sys

import pytest
import torch
import torch.distributed as dist
from conftest import run_tool
from mmagic.registry import MODELS
from mmagic.structures import DataSample
from mmengine.registry import init_default_scope

import panet_mm  # noqa: F401
from panet_mm.models import WithPyramidAttention, load_plain_weights
from panet_mm.models.editors.mix import InsertionError
from panet_mm.models.layers import PyramidAttention

EDSR = dict(type='EDSRNet', in_channels=3, out_channels=3, mid_channels=8, num_blocks=4, upscale_factor=2)
SWINIR = dict(type='SwinIRNet', upscale=1, in_chans=3, img_size=32, window_size=4, img_range=1.0, depths=[1, 1],
              embed_dim=8, num_heads=[2, 2], mlp_ratio=2, upsampler='', resi_connection='1conv')
RDN = dict(type='RDNNet', in_channels=3, out_channels=3, mid_channels=8, num_blocks=4, upscale_factor=2,
           num_layers=2, channel_growth=4)
MSRRESNET = dict(type='MSRResNet', in_channels=3, out_channels=3, mid_channels=8, num_blocks=2, upscale_factor=2)


@pytest.fixture(autouse=True, scope='module')
def _setup():
    """mmagic scope for the registry builds; one intra-op thread for tiny tensors on a busy machine."""
    init_default_scope('mmagic')
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def mixed(generator=EDSR, insert=(dict(after='body.1'),), seed=0, **kwargs):
    torch.manual_seed(seed)
    return MODELS.build(dict(type='WithPyramidAttention', generator=generator, insert=list(insert), **kwargs))


def plain(generator=EDSR, seed=0):
    torch.manual_seed(seed)
    return MODELS.build(generator)


def test_state_dict_keeps_plain_names_and_adds_attention_keys():
    net, ref = mixed(insert=[dict(after='body.1'), dict(before='upsample', reduction=4)]), plain()
    keys = list(net.state_dict())
    plain_keys = list(ref.state_dict())
    assert keys[:len(plain_keys)] == plain_keys
    assert set(keys) - set(plain_keys) == set(net.attention_keys())
    assert 'attentions.after_body_1.value.0.weight' in keys and 'attentions.before_upsample.query.0.weight' in keys
    assert [n for n, _ in net.named_parameters()] == keys  # EDSRNet has no buffers: parameters == state dict
    assert isinstance(net.attentions.before_upsample, PyramidAttention)
    assert net.attentions.before_upsample.query[0].out_channels == 2  # 8 channels / reduction 4


def test_after_every_positions_and_inferred_channels():
    net = mixed(generator=RDN, insert=[dict(after_every=2, of='rdbs')])
    assert [(s.name, s.module, s.channels, s.layout) for s in net.sites] == [
        ('after_rdbs_1', 'rdbs.1', 8, 'nchw'), ('after_rdbs_3', 'rdbs.3', 8, 'nchw')]
    assert net(torch.rand(1, 3, 6, 7)).shape == (1, 3, 12, 14)


def test_repr_shows_positions():
    text = repr(mixed(insert=[dict(after='body.1'), dict(before='upsample')]))
    assert 'generator=EDSRNet' in text
    assert 'attentions.after_body_1: after body.1 (channels=8, layout=nchw)' in text
    assert 'attentions.before_upsample: before upsample' in text


@pytest.mark.parametrize('generator,insert,shape', [
    (EDSR, dict(after='body.1'), (1, 3, 6, 5)),
    (EDSR, dict(before='conv_after_body'), (1, 3, 6, 5)),
    (SWINIR, dict(after='layers.0'), (1, 3, 8, 12)),  # RSTB tokens (B, H*W, C), reshaped around the attention
    (SWINIR, dict(before='layers.1'), (1, 3, 8, 12)),
])
def test_attention_is_in_the_forward_path(generator, insert, shape):
    net = mixed(generator=generator, insert=[insert]).eval()
    x = torch.rand(*shape)
    with torch.no_grad():
        y = net(x)
        name = net.sites[0].name
        net.attentions[name].value[0].weight.mul_(3.0).add_(0.1)
        y2 = net(x)
    assert y.shape == y2.shape
    assert not torch.allclose(y, y2)


def test_tokens_layout_is_detected():
    net = mixed(generator=SWINIR, insert=[dict(after='layers.0'), dict(after='conv_after_body')])
    assert [(s.channels, s.layout) for s in net.sites] == [(8, 'tokens'), (8, 'nchw')]


def test_same_initial_generator_weights_as_plain_model_under_the_same_seed():
    net, ref = mixed(insert=[dict(after_every=1, of='body')]), plain()
    torch.manual_seed(1)
    net.init_weights()
    torch.manual_seed(1)
    ref.init_weights()
    ours = net.state_dict()
    for key, value in ref.state_dict().items():
        assert torch.equal(ours[key], value), key


def test_identity_init_with_plain_weights_reproduces_the_plain_model():
    ref = plain(seed=3).eval()
    net = mixed(insert=[dict(after='body.1'), dict(before='upsample')], attention_cfg=dict(identity_init=True))
    left = net.load_plain_weights(ref.state_dict())
    assert sorted(left) == sorted(net.attention_keys())
    x = torch.rand(2, 3, 7, 6)
    with torch.no_grad():
        assert torch.allclose(net.eval()(x), ref(x), atol=1e-6)


def test_plain_weights_from_an_edit_model_checkpoint_file(tmp_path):
    torch.manual_seed(5)
    edit = MODELS.build(dict(type='BaseEditModel', generator=EDSR, pixel_loss=dict(type='L1Loss')))
    path = tmp_path / 'plain.pth'
    torch.save(dict(meta=dict(), state_dict=edit.state_dict()), path)
    net = mixed(plain_weights=dict(checkpoint=str(path)))  # prefix 'generator.' found automatically
    attention_before = net.attentions.after_body_1.value[0].weight.clone()
    net.init_weights()
    for key, value in edit.generator.state_dict().items():
        assert torch.equal(net.state_dict()[key], value), key
    assert torch.equal(net.attentions.after_body_1.value[0].weight, attention_before)
    # the helper finds the wrapper inside an edit model, too
    model = MODELS.build(dict(type='BaseEditModel', generator=dict(type='WithPyramidAttention', generator=EDSR,
                                                                   insert=[dict(after='body.2')]),
                              pixel_loss=dict(type='L1Loss')))
    assert load_plain_weights(model, str(path)) == model.generator.attention_keys()


def test_plain_weights_that_do_not_match_are_refused():
    net = mixed()
    wider = plain(dict(EDSR, mid_channels=16)).state_dict()
    with pytest.raises(ValueError, match=r'wrong shape: conv_first.weight \(16, 3, 3, 3\) vs model'):
        net.load_plain_weights(wider)
    deeper = plain(dict(EDSR, num_blocks=5)).state_dict()
    with pytest.raises(ValueError, match=r"unexpected \(\d+\): [^;]*body.4.conv1.weight"):
        net.load_plain_weights(deeper)
    shallower = plain(dict(EDSR, num_blocks=3)).state_dict()
    with pytest.raises(ValueError, match=r"missing \(\d+\): [^;]*body.3.conv1.weight"):
        net.load_plain_weights(shallower)
    with pytest.raises(ValueError, match='pass prefix='):
        net.load_plain_weights({'ema.' + k: v for k, v in plain().state_dict().items()})


def test_mixed_checkpoint_round_trip_is_strict():
    net = mixed(insert=[dict(after='body.1'), dict(after='body.3')])
    buffer = io.BytesIO()
    torch.save(net.state_dict(), buffer)
    buffer.seek(0)
    other = mixed(insert=[dict(after='body.1'), dict(after='body.3')], seed=9)
    other.load_state_dict(torch.load(buffer, weights_only=True), strict=True)
    x = torch.rand(1, 3, 5, 5)
    with torch.no_grad():
        assert torch.equal(net.eval()(x), other.eval()(x))
    assert other.load_plain_weights(net.state_dict()) == []  # a mixed checkpoint loads fully, too


def test_deepcopy_and_pickle_keep_hooks_on_their_own_copy():
    net = mixed().eval()
    x = torch.rand(1, 3, 6, 6)
    with torch.no_grad():
        y = net(x)
        twin = copy.deepcopy(net)
        assert torch.equal(twin(x), y)
        twin.attentions.after_body_1.value[0].weight.add_(1.0)
        assert not torch.allclose(twin(x), y)  # the copy's hook runs the copy's attention
        assert torch.equal(net(x), y)  # and the original is untouched
        restored = pickle.loads(pickle.dumps(net))
        assert torch.equal(restored(x), y)
    assert twin.wrapped is not net.wrapped and twin.wrapped.body is twin.body


def test_train_eval_reach_the_wrapped_generator_and_attributes_fall_through():
    net = mixed()
    net.eval()
    assert not net.training and not net.wrapped.training and not net.attentions.after_body_1.training
    net.train()
    assert net.wrapped.training and net.body[0].training
    assert net.upscale_factor == 2  # a plain attribute of EDSRNet


def test_edit_model_train_step_reaches_the_attention():
    generator = dict(type='WithPyramidAttention', generator=EDSR, insert=[dict(after='body.1')])
    model = MODELS.build(dict(type='BaseEditModel', generator=generator,
                              pixel_loss=dict(type='CompositeLoss', losses='1*L1+0.5*MSE'),
                              data_preprocessor=dict(type='DataPreprocessor', mean=[0.] * 3, std=[255.] * 3)))
    x, gt = torch.rand(2, 3, 6, 6), torch.rand(2, 3, 12, 12)
    losses = model(x, _samples(gt), mode='loss')
    losses['loss'].backward()
    assert model.generator.attentions.after_body_1.query[0].weight.grad.abs().sum() > 0


def _samples(gt):
    return DataSample(gt_img=gt)


def test_ddp_forward_backward(tmp_path):
    dist.init_process_group('gloo', init_method=f'file://{tmp_path}/store', rank=0, world_size=1)
    try:
        net = torch.nn.parallel.DistributedDataParallel(mixed())
        net(torch.rand(2, 3, 5, 5)).mean().backward()
        assert net.module.attentions.after_body_1.value[0].weight.grad is not None
        assert net.module.body[0].conv1.weight.grad is not None
    finally:
        dist.destroy_process_group()


# ------------------------------------------------------------------------------------------ errors
def test_wrong_position_fails_at_build_listing_valid_positions():
    with pytest.raises(ValueError) as err:
        mixed(insert=[dict(after='body.7')])
    message = str(err.value)
    assert "insert[0] after='body.7' is not a submodule of EDSRNet (did you mean 'body.3'?)" in message
    for name in ('conv_first', 'body.0', 'body.3', 'conv_after_body', 'upsample', 'conv_last'):
        assert name in message


@pytest.mark.parametrize('insert,generator,match', [
    (dict(after_every=2, of='conv_first'), EDSR, "of='conv_first' is a Conv2d; after_every needs"),
    (dict(after_every=9, of='body'), EDSR, 'has only 4 children'),
    (dict(after='body.1', reductoin=2), EDSR, r"key 'reductoin' .* \(did you mean 'reduction'\?\)"),
    (dict(after='body.1', before='body.2'), EDSR, 'needs exactly one of'),
    (dict(after='body.1', channels=16), EDSR, 'channels=16 but the module gives 8 channels'),
    (dict(after='body.1', reduction=3), EDSR, r"insert\[0\] \(after 'body.1'\): channels \(8\) must be divisible"),
    (dict(after='lrelu'), MSRRESNET, 'runs 2 times per forward'),
    (dict(after='upsample1', identity_init=True, res_scale=0.5), MSRRESNET, 'identity_init=True needs res_scale=1'),
])
def test_bad_insertions_fail_at_build(insert, generator, match):
    with pytest.raises(ValueError, match=match):
        mixed(generator=generator, insert=[insert])


SRCNN = dict(type='SRCNNNet')


@pytest.mark.parametrize('generator,insert,hint', [
    (RDN, dict(before='upsampling'), "before='upsampling' is not a submodule of RDNNet (did you mean 'upscale'?)"),
    (SRCNN, dict(after='conv7'), "(did you mean 'conv1', 'conv2' or 'conv3'?)"),
    (RDN, dict(after='rdbs.9'), "(did you mean 'rdbs.3'?)"),             # past the last numbered child
    (RDN, dict(after_every=2, of='rdb'), "of='rdb' is not a submodule of RDNNet (did you mean 'rdbs'?)"),
    (EDSR, dict(after='Upsample'), "(did you mean 'upsample'?)"),
    (EDSR, dict(aftr='body.1'), "needs exactly one of after=NAME, before=NAME or after_every=N with of=NAME "
                                "(did you mean 'after' for 'aftr'?)"),
])
def test_every_position_error_names_the_closest_position(generator, insert, hint):
    with pytest.raises(InsertionError) as err:
        mixed(generator=generator, insert=[insert])
    assert hint in str(err.value)


def test_attention_cfg_key_error_names_the_closest_argument():
    with pytest.raises(InsertionError, match=r"attention_cfg key 'reductoin' .*\(did you mean 'reduction'\?\)"):
        mixed(attention_cfg=dict(reductoin=2))


@pytest.mark.parametrize('insert,message', [
    (['conv1'], "insert[0] is a str 'conv1'; each entry is a dict like dict(after='conv1'); --cfg-options cannot "
                "write dicts inside lists, put insert=[dict(after='conv1')] in a config file"),
    # what mmengine's DictAction makes of --cfg-options "model.generator.insert=[dict(after='conv7')]"
    (["dict(after='conv7')"], "insert[0] is a str \"dict(after='conv7')\"; each entry is a dict like "
                              "dict(after='conv7'); --cfg-options cannot write dicts inside lists"),
    ([3], "insert[0] is an int 3; each entry is a dict like dict(after='NAME')"),
    (dict(after='body.1'), "insert is a single dict {'after': 'body.1'}; insert is a list of them: put it in "
                           "brackets, insert=[dict(after='body.1')]"),
    ("dict(after='body.1')", "insert is a str \"dict(after='body.1')\"; insert is a list of dicts such as "
                             "[dict(after='body.1')] (--cfg-options cannot write dicts inside lists"),
    (None, 'insert is None; insert is a list of dicts'),
])
def test_insert_that_is_not_a_list_of_dicts_is_named(insert, message):
    with pytest.raises(InsertionError) as err:
        MODELS.build(dict(type='WithPyramidAttention', generator=EDSR, insert=insert))
    assert message in str(err.value) and '\n' not in str(err.value)


def test_insert_from_cfg_options_is_one_line_from_the_tools(tmp_path):
    """DictAction keeps dict(...) inside a list as a string; tools/train.py prints the refusal as one line."""
    proc = run_tool([sys.executable, 'tools/train.py', 'configs/mix/demo/edsr_pa_sr_x2_demo.py', '--work-dir',
                     str(tmp_path / 'w'), '--cfg-options', "model.generator.insert=[dict(after='conv7')]"],
                    check=False, timeout=300)
    assert proc.returncode != 0 and 'Traceback' not in proc.stderr, proc.stderr[-3000:]
    assert proc.stderr.strip().splitlines()[-1].startswith('error: insert[0] is a str "dict(after=\'conv7\')"')


def test_same_position_twice_is_refused():
    with pytest.raises(ValueError, match='second attention after'):
        mixed(insert=[dict(after='body.1'), dict(after_every=2, of='body')])


def test_empty_insert_is_the_plain_generator():
    net, ref = mixed(insert=[]), plain()
    x = torch.rand(1, 3, 5, 5)
    assert net.attention_keys() == [] and list(net.state_dict()) == list(ref.state_dict())
    with torch.no_grad():
        assert torch.equal(net(x), ref(x))


def test_registered():
    assert MODELS.get('WithPyramidAttention') is WithPyramidAttention


class _NoMetaNet(torch.nn.Module):
    """Rebinds an attribute in forward and reads a value (.item(), no meta kernel): the probe falls back."""

    def __init__(self):
        super().__init__()
        self.head = torch.nn.Conv2d(3, 6, 3, padding=1)
        self.tail = torch.nn.Conv2d(6, 3, 3, padding=1)
        self.offset = torch.zeros(1)

    def forward(self, x):
        self.offset = self.offset.to(x)
        gain = 1.0 + 0.0 * float(x.abs().max())
        return self.tail(self.head(x) * gain) + self.offset


def test_probe_falls_back_to_a_real_input_and_restores_attributes():
    net = mixed(generator=_NoMetaNet(), insert=[dict(after='head', reduction=3)])
    assert [(s.channels, s.layout) for s in net.sites] == [(6, 'nchw')]
    assert net.offset.device.type == 'cpu'  # not left on the meta device by the probe
    assert net(torch.rand(1, 3, 5, 5)).shape == (1, 3, 5, 5)


def test_probe_failure_names_probe_shape():
    with pytest.raises(ValueError, match=r'shape probe of _NoMetaNet on an input of shape \(1, 5, 8, 8\) failed'):
        mixed(generator=_NoMetaNet(), insert=[dict(after='head')], probe_shape=(5, 8, 8))


class _TwoInputNet(_NoMetaNet):
    """Takes more than an image, as LIIF (coord, cell) and TTSR (textures) do."""

    def forward(self, x, coord):
        return super().forward(x) + coord


def test_a_generator_taking_more_than_an_image_is_named_without_a_probe_shape_hint():
    """LIIF / TTSR: "pass a probe_shape=(C, H, W)" could not help (no shape supplies coord and cell)."""
    with pytest.raises(ValueError, match=r"^_TwoInputNet takes more inputs than an image \(.*missing 1 required "
                       r"positional argument: 'coord'\), so WithPyramidAttention cannot run it") as err:
        mixed(generator=_TwoInputNet(), insert=[dict(after='head')])
    assert 'probe_shape' not in str(err.value)
