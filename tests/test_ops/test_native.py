"""The compiled CPU row step (panet_mm/ops/native.py, csrc/attention_rows.cpp) against torch's operations."""
import importlib
import os
import os.path as osp
import shutil
import subprocess
import sys
import warnings

import pytest
import torch

from panet_mm.ops.layout import make_geometry
from panet_mm.ops.pyramid_attention import build_pyramid, pyramid_attention, pyramid_scales

native = importlib.import_module('panet_mm.ops.native')
chunks = importlib.import_module('panet_mm.ops.chunks')

pytestmark = pytest.mark.usefixtures('one_thread')


def _can_build() -> bool:
    if shutil.which('c++') is None:
        return False
    try:
        from torch.utils.cpp_extension import verify_ninja_availability
        native._ninja_on_path()
        verify_ninja_availability()
    except RuntimeError:
        return False
    return True


needs_build = pytest.mark.skipif(not _can_build(), reason='no C++ compiler or ninja: the kernel runs torch operations')


@pytest.fixture
def native_on(monkeypatch):
    monkeypatch.delenv(native.ENV_VAR, raising=False)
    ops = native.fused_ops()
    assert ops is not None, native.native_status()
    return ops


def _chunk_probabilities(method, batch, size, sizes, fused, monkeypatch, raw=False, flush=False, spread=1.0,
                         chunk=7, seed=0, ksize=3):
    """Every chunk's probabilities (and raw scores) of one gather, as the kernel's forward computes them."""
    monkeypatch.setenv(native.ENV_VAR, '1' if fused else '0')
    geo = make_geometry(size, size, sizes, ksize, method)
    g = torch.Generator().manual_seed(seed)
    dq = ksize * 4 if method in ('col', 'row') else 4
    positions = (size + 2 * geo.pad_y) * (size + 2 * geo.pad_x)
    lhs = torch.randn(batch, positions, dq, generator=g) * spread
    rhs_t = torch.randn(batch, dq, geo.num_keys, generator=g)
    inv = torch.rand(batch, 1, geo.num_keys, generator=g) + 0.5
    bias = geo.key_bias(torch.float32, torch.device('cpu'))
    ws = chunks.Workspace(torch.device('cpu'))
    plan = chunks.chunk_plan(geo, chunk, torch.device('cpu'))
    span = max(m for _, m, _ in plan)
    gather = chunks.Gather(ws, 'p', geo, lhs, rhs_t, torch.float32, span)
    outs, raws = [], []
    for a, m, rows in plan:
        # a strided destination, as the kernel's (a stream buffer's rows of several images)
        out = torch.full((batch, m + 3, geo.num_keys), float('nan'))[:, 1:m + 1]
        raw_rows = torch.empty(batch, m, geo.num_keys) if raw else None
        chunks.probabilities(gather, out, inv, bias, a, rows, raw_rows, flush)
        outs.append(out.clone())
        raws.append(raw_rows)
    return outs, raws


@needs_build
def test_builds_where_a_compiler_and_ninja_exist(native_on):
    assert native.native_status() == 'on'
    assert native.fused_ops() is native_on


@needs_build
@pytest.mark.parametrize('method', ['col', 'pixel', 'row'])
@pytest.mark.parametrize('raw,flush', [(False, False), (True, True)])
@pytest.mark.parametrize('size,ksize', [(9, 3), (32, 3), (9, 5)])
def test_fused_rows_equal_torch_operations(native_on, monkeypatch, method, raw, flush, size, ksize):
    """Same probabilities within float32 rounding (exp differs in its last bits), zeros in the same places
    (padding keys and query rows), and bit-identical raw scores (the shifted sums add in the same order).
    At 32x32 a row has more than 2048 keys: several blocks, whose maxima the second sweep reconciles; 5x5
    patches sum four terms per stage, more than the step's one-pass loop takes."""
    sizes = [(size, size), (size - 1, size - 1), (size - 2, size - 2)]
    batch, chunk = (2, 7) if size < 16 else (1, 3 * size + 5)
    fused, fused_raw = _chunk_probabilities(method, batch, size, sizes, True, monkeypatch, raw, flush, chunk=chunk,
                                            ksize=ksize)
    eager, eager_raw = _chunk_probabilities(method, batch, size, sizes, False, monkeypatch, raw, flush, chunk=chunk,
                                            ksize=ksize)
    if size > 16:
        assert fused[0].shape[-1] > 2048
    for f, e in zip(fused, eager):
        assert torch.isfinite(f).all()
        assert (f[e == 0] == 0).all()                    # padding keys and query rows
        assert (e[f == 0] < 2e-38).all()                 # and where exp(-87) ends float32's normal numbers
        # torch's softmax differs from the step's by up to 5e-6 where it runs its AVX2 kernels (ATEN_CPU_CAPABILITY=
        # avx2), 2e-6 with AVX-512; both are 4-5e-6 from the float64 softmax of the same float32 logits
        torch.testing.assert_close(f, e, rtol=1e-5, atol=1e-9)
    if raw:
        for f, e in zip(fused_raw, eager_raw):
            assert torch.equal(f, e)


def _chunk_backward(method, size, fused, monkeypatch, with_raw, spread=1.0, chunk=7):
    """Every chunk's dZ (and raw * dZ) of one gather pair, as the kernel's backward computes them."""
    monkeypatch.setenv(native.ENV_VAR, '1' if fused else '0')
    sizes = [(size, size), (size - 1, size - 1), (size - 2, size - 2)]
    geo = make_geometry(size, size, sizes, 3, method)
    g = torch.Generator().manual_seed(3)
    dq = 3 * 4 if method in ('col', 'row') else 4
    positions = (size + 2 * geo.pad_y) * (size + 2 * geo.pad_x)
    lhs, grad_lhs = torch.randn(2, positions, dq, generator=g) * spread, torch.randn(2, positions, dq, generator=g)
    rhs_t, values_t = torch.randn(2, dq, geo.num_keys, generator=g), torch.randn(2, dq, geo.num_keys, generator=g)
    inv = torch.rand(2, 1, geo.num_keys, generator=g) + 0.5
    bias = geo.key_bias(torch.float32, torch.device('cpu'))
    ws = chunks.Workspace(torch.device('cpu'))
    plan = chunks.chunk_plan(geo, chunk, torch.device('cpu'))
    span = max(m for _, m, _ in plan)
    scores = chunks.Gather(ws, 'p', geo, lhs, rhs_t, torch.float32, span)
    grads = chunks.Gather(ws, 'g', geo, grad_lhs, values_t, torch.float32, span)
    results = []
    for a, m, rows in plan:
        attn = torch.empty(2, m, geo.num_keys)
        raw = torch.empty(2, m, geo.num_keys) if with_raw else None
        chunks.probabilities(scores, attn, inv, bias, a, rows, raw, True)
        dz = torch.full((2, m + 2, geo.num_keys), float('nan'))[:, 1:m + 1]
        raw_dz = chunks.softmax_backward_rows(grads, attn, inv, a, dz, raw, True)
        results.append((dz.clone(), None if raw_dz is None else raw_dz.clone()))
    return results


@needs_build
@pytest.mark.parametrize('method', ['col', 'pixel'])
@pytest.mark.parametrize('with_raw', [False, True])
def test_fused_backward_rows_equal_torch_operations(native_on, monkeypatch, method, with_raw):
    """dZ = attn * (g - sum attn * g) * inv_scale (and raw * attn * (g - ...)) within float32 rounding (the
    sum accumulates in another order, and g - sum cancels: 3e-5 of the largest value)."""
    fused = _chunk_backward(method, 9, True, monkeypatch, with_raw)
    eager = _chunk_backward(method, 9, False, monkeypatch, with_raw)
    for (f, f_raw), (e, e_raw) in zip(fused, eager):
        assert torch.isfinite(f).all()
        torch.testing.assert_close(f, e, rtol=1e-4, atol=3e-5 * e.abs().max().item())
        if with_raw:
            torch.testing.assert_close(f_raw, e_raw, rtol=1e-4, atol=3e-5 * e_raw.abs().max().item())
        else:
            assert f_raw is None and e_raw is None


@needs_build
def test_fused_backward_rows_write_no_denormals(native_on, monkeypatch):
    tiny = torch.finfo(torch.float32).tiny
    for dz, _ in _chunk_backward('col', 8, True, monkeypatch, False, spread=40.0):
        assert not ((dz != 0) & (dz.abs() < tiny)).any()


@needs_build
def test_fused_rows_write_no_denormals(native_on, monkeypatch):
    """Logits spread over hundreds: the compiled exp returns 0 below float32's normal range, so even the
    unflushed forward probabilities hold no denormal; they differ from torch's by less than 2e-38."""
    sizes = [(8, 8), (7, 7)]
    fused, _ = _chunk_probabilities('col', 1, 8, sizes, True, monkeypatch, spread=40.0)
    eager, _ = _chunk_probabilities('col', 1, 8, sizes, False, monkeypatch, spread=40.0)
    tiny = torch.finfo(torch.float32).tiny
    assert any(((e != 0) & (e < tiny)).any() for e in eager)          # torch's softmax wrote denormals
    for f, e in zip(fused, eager):
        assert not ((f != 0) & (f < tiny)).any()
        torch.testing.assert_close(f, e, rtol=2e-6, atol=2e-38)


@needs_build
@pytest.mark.parametrize('method', ['col', 'pixel', 'row'])
@pytest.mark.parametrize('adjoint', [False, True])
@pytest.mark.parametrize('ksize', [3, 5])
def test_stencil_rows_equal_torch_operations_bitwise(native_on, monkeypatch, method, adjoint, ksize):
    """Every stage of the gather and of the paste (its adjoint): the same sums, added in the same order (5x5
    patches: four terms per stage, more than the compiled step adds in one pass)."""
    geo = make_geometry(9, 9, [(9, 9), (7, 7)], ksize, method)
    stages = chunks.adjoint_stages_of(geo) if adjoint else chunks.stages_of(geo)
    ws = chunks.Workspace(torch.device('cpu'))
    for halo, shifts in stages:
        src = chunks.Rows(ws, 's', 2, geo.num_keys, torch.float32, 0, 6 * halo + 40)
        src.reset(0)
        src.take(6 * halo + 40).copy_(torch.randn(2, 6 * halo + 40, geo.num_keys))
        results = []
        for flag in ('1', '0'):
            monkeypatch.setenv(native.ENV_VAR, flag)
            out = torch.full((2, 21, geo.num_keys), float('nan'))[:, :20]      # strided, as the streams' rows
            results.append(chunks.stencil(out, src, 3 * halo, shifts).clone())
        assert torch.equal(*results)


@needs_build
@pytest.mark.parametrize('method', ['col', 'pixel'])
def test_stencil_rows_of_bfloat16_sum_in_float32(native_on, monkeypatch, method):
    """The products' stream under autocast is bfloat16: its shifted sums are the float32 sums of its values
    (bit-identical to torch's float32 passes over the stream made float32)."""
    geo = make_geometry(9, 9, [(9, 9), (7, 7)], 3, method)
    halo, shifts = chunks.stages_of(geo)[0]
    ws = chunks.Workspace(torch.device('cpu'))
    values = torch.randn(2, 6 * halo + 40, geo.num_keys).bfloat16()
    results = []
    for flag, dtype in (('1', torch.bfloat16), ('0', torch.float32)):
        monkeypatch.setenv(native.ENV_VAR, flag)
        src = chunks.Rows(ws, f's{flag}', 2, geo.num_keys, dtype, 0, 6 * halo + 40)
        src.reset(0)
        src.take(6 * halo + 40).copy_(values)
        results.append(chunks.stencil(torch.empty(2, 20, geo.num_keys), src, 3 * halo, shifts))
    assert torch.equal(*results)


@needs_build
@pytest.mark.parametrize('method', ['col', 'pixel'])
def test_kernel_under_bfloat16_autocast(native_on, monkeypatch, method):
    """Under CPU bfloat16 autocast the compiled steps sum the bfloat16 products in float32 (torch's operations
    round the first sum to bfloat16): the kernel is as close to the float64 reference, or closer (measured:
    relative errors 0.0060 / 0.0056 against torch's operations' 0.0090 / 0.0075)."""
    from panet_mm.ops.pyramid_attention import pyramid_attention_reference
    g = torch.Generator().manual_seed(2)
    scales = pyramid_scales(3)
    q = torch.randn(1, 8, 10, 10, generator=g, dtype=torch.float64)
    keys = build_pyramid(torch.randn(1, 8, 10, 10, generator=g, dtype=torch.float64), scales)
    values = build_pyramid(torch.randn(1, 16, 10, 10, generator=g, dtype=torch.float64), scales)
    expected = pyramid_attention_reference(q, keys, values)
    errors = {}
    for flag in ('1', '0'):
        monkeypatch.setenv(native.ENV_VAR, flag)
        with torch.autocast('cpu', dtype=torch.bfloat16):
            out = pyramid_attention(q.float(), [k.float() for k in keys], [v.float() for v in values], method=method)
        errors[flag] = ((out.double() - expected).abs().max() / expected.abs().max()).item()
    assert errors['1'] < 3e-2 and errors['1'] <= 1.5 * errors['0'] + 1e-3, errors


@needs_build
def test_fused_rows_keep_nan(native_on, monkeypatch):
    """A NaN score makes its row NaN, as torch's softmax does (nothing turns it into a probability)."""
    geo = make_geometry(6, 6, [(6, 6), (5, 5)], 3, 'col')
    src = torch.randn(1, 40, geo.num_keys)
    src[0, 10, 5] = float('nan')
    out = torch.empty(1, 3, geo.num_keys)
    offsets, counts, starts, ends, keys, first, last = chunks.flat_shifts(chunks.stages_of(geo)[-1][1])
    native_on.stencil_softmax(src[:, 10 + first:10 + 3 + last], -first, offsets, counts, starts, ends, keys,
              torch.ones(1, 1, geo.num_keys), None, out, None, None)
    assert torch.isnan(out[0, 0]).all() and torch.isfinite(out[0, 2]).all()


@needs_build
def test_fused_op_checks_its_ranges(native_on):
    src, out, inv = torch.zeros(1, 5, 10), torch.empty(1, 3, 10), torch.ones(1, 1, 10)
    with pytest.raises(RuntimeError, match='key range is outside'):
        native_on.stencil_softmax(src, 1, [-1], [1], [0], [10], [1], inv, None, out, None, None)
    with pytest.raises(RuntimeError, match='shifted row is outside'):
        native_on.stencil_softmax(src, 1, [-2], [1], [0], [9], [1], inv, None, out, None, None)
    with pytest.raises(RuntimeError, match='zero_rows holds row 3, outside the 3 rows'):
        native_on.stencil_softmax(src, 1, [-1], [1], [0], [9], [1], inv, None, out, None, torch.tensor([0, 3]))


@needs_build
def test_fused_rows_zero_the_listed_rows_and_keep_their_raw_scores(native_on):
    """The padding query positions (zero_rows) get probability 0; their raw scores are still the shifted sums."""
    geo = make_geometry(6, 6, [(6, 6), (5, 5)], 3, 'col')
    g = torch.Generator().manual_seed(3)
    src = torch.randn(2, 12, geo.num_keys, generator=g)
    offsets, counts, starts, ends, keys, first, last = chunks.flat_shifts(chunks.stages_of(geo)[-1][1])
    args = (src[:, 2 + first:2 + 8 + last], -first, offsets, counts, starts, ends, keys,
            torch.rand(2, 1, geo.num_keys, generator=g) + 0.5, geo.key_bias(torch.float32, torch.device('cpu')))
    outs, raws = [], []
    for zero_rows in (None, torch.tensor([0, 5, 7])):
        out, raw = torch.full((2, 8, geo.num_keys), float('nan')), torch.full((2, 8, geo.num_keys), float('nan'))
        native_on.stencil_softmax(*args, out, raw, zero_rows)
        outs.append(out)
        raws.append(raw)
    kept = [1, 2, 3, 4, 6]
    assert torch.equal(outs[1][:, kept], outs[0][:, kept]) and torch.equal(raws[1], raws[0])
    assert (outs[1][:, [0, 5, 7]] == 0).all()


@needs_build
@pytest.mark.parametrize('method,ksize', [('col', 3), ('pixel', 3), ('col', 5), ('pixel', 5)])
def test_kernel_with_and_without_the_fused_rows(native_on, monkeypatch, method, ksize):
    """Forward and gradients of the whole kernel agree with the compiled step on and off."""
    g = torch.Generator().manual_seed(1)
    scales = pyramid_scales(3)
    q = torch.randn(2, 4, 8, 9, generator=g)
    keys = build_pyramid(torch.randn(2, 4, 8, 9, generator=g), scales)
    values = build_pyramid(torch.randn(2, 8, 8, 9, generator=g), scales)
    grad_out = torch.randn(2, 8, 8, 9, generator=g)
    results = []
    for flag in ('1', '0'):
        monkeypatch.setenv(native.ENV_VAR, flag)
        leaves = [t.detach().requires_grad_() for t in (q, *keys, *values)]
        out = pyramid_attention(leaves[0], leaves[1:4], leaves[4:], ksize=ksize, method=method, chunk_size=11)
        results.append([out, *torch.autograd.grad((out * grad_out).sum(), leaves)])
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)   # float32 rounding through a softmax


def test_turned_off_by_the_environment(monkeypatch):
    monkeypatch.setenv(native.ENV_VAR, '0')
    assert native.fused_ops() is None
    assert native.native_status() == f'off ({native.ENV_VAR}=0)'


def test_failed_build_warns_once_and_falls_back(monkeypatch):
    """No compiler (or any failed build): one warning naming why and the switch, then torch operations."""
    monkeypatch.delenv(native.ENV_VAR, raising=False)
    monkeypatch.setattr(native, '_state', {})

    def broken():
        raise RuntimeError('no C++ compiler found (install g++, or set CXX)')

    monkeypatch.setattr(native, '_build', broken)
    why = r'could not be built \(RuntimeError: no C\+\+ compiler found.*PANET_MM_NATIVE=0'
    with pytest.warns(UserWarning, match=why):
        assert native.fused_ops() is None
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        assert native.fused_ops() is None
    assert native.native_status().startswith('unavailable (RuntimeError: no C++ compiler found')
    q = torch.randn(1, 4, 6, 6)
    levels = build_pyramid(torch.randn(1, 4, 6, 6), pyramid_scales(2))
    assert torch.isfinite(pyramid_attention(q, levels, levels)).all()


def test_build_name_carries_torch_version_folder_and_instructions(monkeypatch):
    """Virtual environments of one Python (the two stacks, two checkouts) share torch's extension folder."""
    name = native._build_name()
    assert name.startswith('panet_mm_attention_rows_')
    assert torch.__version__.split('+')[0].replace('.', '_') in name
    monkeypatch.setattr(torch, '__file__', '/elsewhere/site-packages/torch/__init__.py')
    assert native._build_name() != name


def test_torch_through_a_symlinked_environment_gets_its_own_build_name(monkeypatch, tmp_path):
    """The compile command names torch's headers by the path torch was imported by: one torch reached through a
    symlinked environment (a clone with `ln -s ../main/.venv .venv`) rebuilt the other's library at every switch."""
    name = native._build_name()
    link = tmp_path / 'site-packages'
    link.symlink_to(osp.dirname(osp.dirname(torch.__file__)))
    monkeypatch.setattr(torch, '__file__', str(link / 'torch' / '__init__.py'))
    assert native._build_name() != name


def test_two_panet_mm_copies_get_two_build_names(monkeypatch):
    """A git checkout and an installed wheel on one torch: each its own build folder (one shared folder was
    recompiled on every switch, its build.ninja rewritten with the other copy's source path)."""
    name = native._build_name()
    monkeypatch.setattr(native, 'SOURCE', '/elsewhere/site-packages/panet_mm/ops/csrc/attention_rows.cpp')
    assert native._build_name() != name
    assert native._build_name().startswith(name.rsplit('_', 1)[0])      # same torch, only the copy differs


def _fake_extension_builder(folder, loads, lock_kind='FileBaton'):
    """Stands for torch.utils.cpp_extension: its lock kind, its build folder, and a load that only counts."""
    import types
    return types.SimpleNamespace(**{lock_kind: object}, verify_ninja_availability=lambda: None,
                                 _get_build_directory=lambda name, verbose: str(folder),
                                 load=lambda **kwargs: loads.append(kwargs['name']))


@pytest.fixture
def fake_builder(monkeypatch, tmp_path):
    """_build with a fake extension builder whose folder is tmp_path (nothing compiles), a short lock wait."""
    loads = []
    monkeypatch.delenv(native.ENV_VAR, raising=False)
    monkeypatch.setenv('CXX', sys.executable)                          # 'a compiler' is found
    monkeypatch.setattr(native, '_state', {})
    monkeypatch.setattr(native, 'LOCK_WAIT_SECONDS', 1.0)
    monkeypatch.setattr(native, '_cpp_extension', lambda: _fake_extension_builder(tmp_path, loads))
    return tmp_path / 'lock', loads


def test_held_build_lock_gives_up_within_the_bound(fake_builder, capsys, monkeypatch):
    """torch < 2.14 waits forever on a lock file a killed build left: fused_ops waits LOCK_WAIT_SECONDS, then
    warns once naming the lock and its fix, and the kernel runs torch's operations."""
    import time
    monkeypatch.setattr(native, '_LOCK_QUIET_SECONDS', 0.0)  # the wait is said at once
    lock, loads = fake_builder
    lock.write_text('')
    began = time.monotonic()
    with pytest.warns(UserWarning, match=rf'build lock {lock} still held after 1 s.*remove it if no other panet_mm'):
        assert native.fused_ops() is None
    assert 0.9 < time.monotonic() - began < 5
    assert loads == [] and lock.exists()                              # torch's unbounded wait never entered
    assert f"another process's build of the fused CPU attention step (lock: {lock})" in capsys.readouterr().err


def test_build_lock_released_during_the_wait_lets_the_build_go_on(fake_builder, monkeypatch, capsys):
    import threading
    lock, loads = fake_builder
    monkeypatch.setattr(native, 'LOCK_WAIT_SECONDS', 30.0)
    lock.write_text('')
    threading.Timer(0.5, lock.unlink).start()                          # the other process's build finishes
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        assert native.fused_ops() is not None
    assert loads == [native._build_name()]
    assert 'waiting' not in capsys.readouterr().err  # a short wait (processes starting together) goes unsaid
    monkeypatch.setattr(native, '_state', {})
    monkeypatch.setattr(native, '_LOCK_QUIET_SECONDS', 0.0)
    lock.write_text('')
    threading.Timer(0.5, lock.unlink).start()
    assert native.fused_ops() is not None
    assert 'waiting up to 30 s' in capsys.readouterr().err


def test_stale_build_lock_is_removed(fake_builder, capsys):
    """A lock older than STALE_LOCK_SECONDS was left by an interrupted build: removed at once, then the build."""
    lock, loads = fake_builder
    lock.write_text('')
    old = lock.stat().st_mtime - native.STALE_LOCK_SECONDS - 60
    os.utime(lock, (old, old))
    native._build()
    assert not lock.exists() and len(loads) == 1
    assert 'minutes ago by an interrupted build' in capsys.readouterr().err


def test_file_lock_of_later_torch_is_left_to_torch(tmp_path, monkeypatch):
    """torch >= 2.14's FileLock is released by the system when its holder dies, and its file stays after a
    release: no wait on it, no removal."""
    monkeypatch.setattr(native, 'LOCK_WAIT_SECONDS', 30.0)
    lock = tmp_path / 'lock'
    lock.write_text('')
    old = lock.stat().st_mtime - native.STALE_LOCK_SECONDS - 60
    os.utime(lock, (old, old))
    native._wait_for_build_lock(_fake_extension_builder(tmp_path, [], 'FileLock'), 'x')
    assert lock.exists()


@needs_build
@pytest.mark.skipif(not hasattr(native._cpp_extension(), 'FileBaton') or hasattr(native._cpp_extension(), 'FileLock'),
                    reason="torch's FileLock is released by the system when a build dies")
def test_lock_left_by_a_killed_build_does_not_hang_a_new_process(tmp_path):
    """The tester's case with this torch: a lock in a fresh TORCH_EXTENSIONS_DIR (as a build killed mid-compile
    leaves it); a new process gives up on the compiled step after the wait instead of hanging."""
    script = ('import importlib.util, sys, time\n'
              f'spec = importlib.util.spec_from_file_location("native", {native.__file__!r})\n'
              'native = importlib.util.module_from_spec(spec); spec.loader.exec_module(native)\n'
              'native.LOCK_WAIT_SECONDS = 1\n'
              'folder = native._cpp_extension()._get_build_directory(native._build_name(), verbose=False)\n'
              'open(folder + "/lock", "w").close()\n'
              'began = time.monotonic(); print(native.native_status(), time.monotonic() - began)\n')
    env = dict(os.environ, TORCH_EXTENSIONS_DIR=str(tmp_path))
    env.pop(native.ENV_VAR, None)
    run = subprocess.run([sys.executable, '-W', 'ignore', '-c', script], env=env, capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 0, run.stderr
    status, seconds = run.stdout.strip().rsplit(' ', 1)
    assert status.startswith('unavailable (RuntimeError: build lock ') and 'still held after 1 s' in status
    assert float(seconds) < 5
    assert not list(tmp_path.glob('*/*.so'))                           # nothing compiled


@needs_build
def test_no_cuda_runtime_line_where_a_toolkit_but_no_gpu_exists(tmp_path):
    """torch prints "No CUDA runtime is found" when importing its extension builder where a CUDA toolkit exists
    (here: CUDA_HOME) but no GPU does; the CPU step needs no CUDA, so a restore must not print it."""
    script = ('import importlib.util, sys\n'
              f'spec = importlib.util.spec_from_file_location("native", {native.__file__!r})\n'
              'native = importlib.util.module_from_spec(spec); spec.loader.exec_module(native)\n'
              'print(native.native_status())\n')
    env = dict(os.environ, CUDA_HOME=str(tmp_path), CUDA_VISIBLE_DEVICES='')
    env.pop(native.ENV_VAR, None)
    run = subprocess.run([sys.executable, '-c', script], env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == 'on'
    assert 'No CUDA runtime' not in run.stderr, run.stderr
