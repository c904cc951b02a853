"""Benchmark the chunked pyramid attention kernel against the released block's way and the reference.

Runs with torch alone: ``panet_mm/ops`` is loaded by file path, so neither mmagic nor mmengine (nor
the ``panet_mm`` package) is imported.

Implementations (``--impls``): ``fast`` (:func:`pyramid_attention`, ``--method``; ``--methods``
adds one ``fast:<method>`` per formulation), ``released`` (:func:`released_block_attention`: the
released block's conv2d / softmax / conv_transpose2d loop over the batch, the code users would
otherwise run) and ``reference`` (:func:`pyramid_attention_reference`, the batched formula). The
baselines always run in float32; ``--dtype`` puts the fast kernel under autocast.

For every (pass, batch, size):

* time: ONE child process runs all implementations interleaved: a warm-up round, then
  ``--repeats`` rounds, each timing one call of every implementation (in a rotated order) and the
  machine's ``torch.mm`` rate in float32 and bfloat16 (2048^2 on CPU, 8192^2 on CUDA; smaller where a product
  would take over a second, as bfloat16 on a CPU without bfloat16 units). Times are
  medians over the rounds; every ratio is taken per round, and its median and min-max spread are
  reported, so a loaded machine shows up as spread rather than as a wrong number.
* memory: on CPU one fresh child per implementation (``--no-memory`` skips them), the peak resident
  set size minus the resident size before the call; on CUDA, in the timing child's warm-up call,
  ``torch.cuda.max_memory_allocated`` minus the memory allocated before it.

The achieved rate of the fast kernel is its counted multiply-adds (:func:`attention_macs` of the
formulation it ran, forward or forward+backward) times two over its time, as a share of the
measured ``torch.mm`` rate of its dtype. Inputs are random tensors of the pyramid's sizes (query
``C/r`` channels, keys ``C/r``, values ``C``, levels ``floor(s*H) x floor(s*W)`` for
``s = 1, 0.9, ...``); the 1x1 embeddings and the pyramid are not timed, for any implementation.

Every printed row carries the 1-minute load average before / after its timing child (the machine
may be shared). ``--targets`` runs only the README's target rows (block forward 64x64 C=64 r=2,
forward+backward 16 x 48x48, C=256 r=8 forward 64x64, whole PA-EDSR x2 forward 64x64 in float32 and
in bfloat16 against the released float32 model), fast against released, with the ``torch.mm`` rates.

Examples (the default CPU run, about 10 minutes on 2 idle cores; the target rows, a few minutes)::

    python tools/analysis_tools/benchmark_attention.py --plot attention.png --json attention.json
    python tools/analysis_tools/benchmark_attention.py --targets
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import os.path as osp
import statistics
import subprocess
import sys
import time
from types import ModuleType
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Sequence, Tuple

if TYPE_CHECKING:  # annotations only: torch is imported where it runs (a child sets its modes first)
    from torch import Tensor, nn
    from torch.optim import Optimizer

    #: An implementation: ``fn(query, keys, values)`` -> the attention's output.
    AttentionFn = Callable[[Tensor, Sequence[Tensor], Sequence[Tensor]], Tensor]
    #: A case's inputs: query, keys, values (one per level) and the output's gradient.
    Inputs = Tuple[Tensor, List[Tensor], List[Tensor], Tensor]

PACKAGE_DIR = osp.join(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))), 'panet_mm')
OPS_DIR = osp.join(PACKAGE_DIR, 'ops')
BASELINES = ('released', 'reference')
DTYPES = ('float32', 'bfloat16', 'float16')

#: A child's job (``--worker``'s JSON: mode, device, sizes, implementations, ...) or a result built from it.
Spec = Dict[str, Any]
#: One implementation's summary of one case (times, ratios, rates, memory), as the tables and ``--json`` show it.
Record = Dict[str, Any]
#: Every case's summaries: ``(pass, batch, size) -> {implementation: record}``.
Rows = Dict[Tuple[str, int, int], Dict[str, Record]]


def load_kernel() -> ModuleType:
    """``panet_mm/ops/pyramid_attention.py``, loaded with ``panet_mm/ops`` as a stand-alone package.

    Importing ``panet_mm.ops`` normally runs ``panet_mm/__init__.py``, which registers the mmagic
    modules; loading the folder under another name needs torch alone.
    """
    name = '_panet_ops'
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, osp.join(OPS_DIR, '__init__.py'),
                                                      submodule_search_locations=[OPS_DIR])
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return importlib.import_module(f'{name}.pyramid_attention')


def native_status(device: str) -> str:
    """Whether the kernel's compiled CPU step (``panet_mm/ops/native.py``) runs; built here, once, before the
    timing children (which then load it from torch's extension folder)."""
    if device != 'cpu':
        return 'n/a'
    load_kernel()
    return importlib.import_module('_panet_ops.native').native_status()


def level_sizes(size: int, levels: int) -> List[Tuple[int, int]]:
    """``(H_l, W_l)`` of every pyramid level for a square ``size x size`` input (the kernel's own sizes)."""
    pa = load_kernel()
    return pa.level_sizes(size, size, pa.pyramid_scales(levels))


def reference_score_map_bytes(batch: int, size: int, levels: int, bytes_per_el: int = 4) -> int:
    """Bytes of the reference's (B, H*W, L) score map (its peak is a few times this)."""
    return batch * size * size * sum(h * w for h, w in level_sizes(size, levels)) * bytes_per_el


def load_memory_helpers() -> ModuleType:
    """``panet_mm/utils/memory.py`` on its own: this tool runs where only torch is installed."""
    spec = importlib.util.spec_from_file_location('_panet_memory', osp.join(PACKAGE_DIR, 'utils', 'memory.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


MEMORY = load_memory_helpers()
current_rss_bytes, peak_rss_bytes = MEMORY.current_rss_bytes, MEMORY.peak_rss_bytes


def impl_method(impl: str, default_method: str) -> Optional[str]:
    """The kernel formulation of ``impl`` (``'fast'`` or ``'fast:<method>'``), None for a baseline."""
    if impl == 'fast':
        return default_method
    if impl.startswith('fast:'):
        return impl.split(':', 1)[1]
    return None


# ----------------------------------------------------------------------------- child process
class Case:
    """One (pass, batch, size) of a spec, with its inputs and a callable per implementation."""

    def __init__(self, spec: Spec) -> None:
        """The case of ``spec`` on its device, with the kernel loaded (torch is imported here, not at module level)."""
        import torch
        self.torch = torch
        if spec.get('threads'):
            torch.set_num_threads(spec['threads'])
        self.spec = spec
        self.pa = load_kernel()
        self.device = torch.device(spec['device'])
        self.cuda = self.device.type == 'cuda'
        self.backward = spec['pass'] == 'fwd+bwd'
        self.dtype = getattr(torch, spec.get('dtype', 'float32'))

    def fn(self, impl: str) -> AttentionFn:
        """The callable of ``impl``: a baseline as it is, the fast kernel with its method, under autocast at --dtype."""
        pa, torch, spec = self.pa, self.torch, self.spec
        method = impl_method(impl, spec['method'])
        if method is None:
            base = pa.released_block_attention if impl == 'released' else pa.pyramid_attention_reference
            return base
        half = self.dtype != torch.float32

        def fast(q: Tensor, ks: Sequence[Tensor], vs: Sequence[Tensor]) -> Tensor:
            """The fast kernel on ``(q, ks, vs)`` with this case's method, budget and dtype."""
            with torch.autocast(self.device.type, dtype=self.dtype, enabled=half):
                return pa.pyramid_attention(q, ks, vs, memory_budget_mb=spec['memory_budget_mb'], method=method)
        return fast

    def inputs(self, batch: int, size: int) -> Inputs:
        """Seeded random inputs of the pyramid's sizes on the device (requiring gradients for forward+backward)."""
        torch, spec = self.torch, self.spec
        g = torch.Generator(device='cpu').manual_seed(0)
        c, cq = spec['channels'], spec['channels'] // spec['reduction']
        sizes = level_sizes(size, spec['levels'])
        q = torch.randn(batch, cq, size, size, generator=g).to(self.device)
        ks = [torch.randn(batch, cq, h, w, generator=g).to(self.device) for h, w in sizes]
        vs = [torch.randn(batch, c, h, w, generator=g).to(self.device) for h, w in sizes]
        grad = torch.randn(batch, c, size, size, generator=g).to(self.device)
        if self.backward:
            for t in (q, *ks, *vs):
                t.requires_grad_()
        return q, ks, vs, grad

    def sync(self) -> None:
        """Wait for the GPU's queued work (CUDA only), so that a time covers the whole call."""
        if self.cuda:
            self.torch.cuda.synchronize()

    def call(self, fn: AttentionFn, q: Tensor, ks: Sequence[Tensor], vs: Sequence[Tensor], grad: Tensor) -> None:
        """One call of ``fn``: forward without autograd, or forward and backward of ``grad``; synchronised."""
        if self.backward:
            for t in (q, *ks, *vs):
                t.grad = None
            fn(q, ks, vs).backward(grad)
        else:
            with self.torch.no_grad():
                fn(q, ks, vs)
        self.sync()

    def timed(self, fn: AttentionFn, inputs: Inputs) -> Tuple[float, float]:
        """Wall-clock and CPU seconds of one :meth:`call`."""
        t0, c0 = time.perf_counter(), time.process_time()
        self.call(fn, *inputs)
        return time.perf_counter() - t0, time.process_time() - c0

    def matmul_gflops(self, dtype_name: str, budget_s: float = 1.0) -> float:
        """Measured ``torch.mm`` rate (GFLOP/s, 2 per multiply-add), the better of two calls.

        The matrices are 2048^2 (8192^2 on CUDA), or smaller where the next power-of-two size (from 256 up) would
        take over ``budget_s`` per product: a CPU without bfloat16 units emulates them, and the 2048^2 products
        took about 30 s per round there.
        """
        torch = self.torch
        cap = 8192 if self.cuda else 2048
        n = min(256, cap)
        while True:
            a = torch.randn(n, n, device=self.device).to(getattr(torch, dtype_name))
            b = torch.randn(n, n, device=self.device).to(getattr(torch, dtype_name))
            best = float('inf')
            for _ in range(2):
                self.sync()
                t0 = time.perf_counter()
                torch.mm(a, b)
                self.sync()
                best = min(best, time.perf_counter() - t0)
            if n >= cap or 8 * best > budget_s:
                return 2 * n ** 3 / best / 1e9
            n *= 2

    def chunk_info(self, impl: str) -> Tuple[int, int]:
        """(images, query pixels) per chunk that the kernel plans for ``impl`` on this case (the chunk column)."""
        pa, spec = self.pa, self.spec
        size, batch = spec['size'], spec['batch']
        sizes = level_sizes(size, spec['levels'])
        method = self.resolved(impl)
        budget = spec['memory_budget_mb'] or pa.default_memory_budget_mb(self.device)
        # (the forward pass runs without autograd: the kernel then budgets the forward's temporaries alone)
        images = pa.choose_batch_chunk(size, size, sizes, batch, dtype=self.dtype, method=method, device=self.device,
                                       memory_budget_mb=budget, channels=spec['channels'], backward=self.backward)
        chunk = pa.choose_chunk_size(size, size, sizes, images, dtype=self.dtype, memory_budget_mb=budget,
                                     method=method, device=self.device, channels=spec['channels'],
                                     backward=self.backward)
        return images, chunk

    def resolved(self, impl: str) -> Optional[str]:
        """The formulation a fast implementation runs ('auto' resolved as the kernel does)."""
        spec = self.spec
        method = impl_method(impl, spec['method'])
        if method == 'auto':
            size = spec['size']
            method = self.pa.choose_method(size, size, level_sizes(size, spec['levels']),
                                           spec['channels'] // spec['reduction'], spec['channels'],
                                           dtype=self.dtype, device=self.device,
                                           memory_budget_mb=spec['memory_budget_mb'], backward=self.backward)
        return method

    def macs(self, impl: str) -> int:
        """Multiply-adds of one call of ``impl`` on the batch (a baseline's counted as the ``'patch'`` method's)."""
        spec = self.spec
        method = self.resolved(impl) or 'patch'
        scales = [1 - i / 10 for i in range(spec['levels'])]
        return spec['batch'] * self.pa.attention_macs(spec['size'], spec['size'], scales,
                                                      spec['channels'] // spec['reduction'], spec['channels'],
                                                      method=method, backward=self.backward)


def measure_memory(spec: Spec) -> Spec:
    """Peak extra memory and time of the first call of one implementation (in a fresh process)."""
    case = Case(spec)
    fn = case.fn(spec['impl'])
    case.call(fn, *case.inputs(1, 12))          # load the BLAS/softmax kernels outside the measurement
    inputs = case.inputs(spec['batch'], spec['size'])
    torch = case.torch
    if case.cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base = current_rss_bytes()
    first = case.timed(fn, inputs)[0]
    peak = (torch.cuda.max_memory_allocated() if case.cuda else peak_rss_bytes()) - base
    return dict(spec, peak_bytes=max(int(peak), 0), first_call_s=first)


def measure_times(spec: Spec) -> Spec:
    """All implementations of one case, interleaved in this process; see the module docstring."""
    case = Case(spec)
    impls = spec['impls']
    fns = {impl: case.fn(impl) for impl in impls}
    tiny = case.inputs(1, 12)
    inputs = case.inputs(spec['batch'], spec['size'])
    rates = ['float32', 'bfloat16'] + ([spec['dtype']] if spec['dtype'] not in ('float32', 'bfloat16') else [])
    warmup, peaks, errors = {}, {}, {}
    for impl in impls:                          # on CUDA the warm-up call also measures the peak memory
        if case.cuda:
            case.torch.cuda.reset_peak_memory_stats()
            base = case.torch.cuda.memory_allocated()
        try:
            case.call(fns[impl], *tiny)         # load the BLAS / softmax kernels first
            warmup[impl] = case.timed(fns[impl], inputs)[0]
        except (RuntimeError, ValueError) as err:   # e.g. a baseline out of memory: the others still run
            errors[impl] = str(err).strip().splitlines()[0][:200]
            if case.cuda:
                case.torch.cuda.empty_cache()
            continue
        if case.cuda:
            peaks[impl] = max(case.torch.cuda.max_memory_allocated() - base, 0)
    impls = [impl for impl in impls if impl not in errors]
    times = {impl: [] for impl in impls}
    cpu_times = {impl: [] for impl in impls}
    mm = {name: [] for name in rates}
    for r in range(spec['repeats']):
        for name in rates:
            mm[name].append(case.matmul_gflops(name))
        for impl in impls[r % len(impls):] + impls[:r % len(impls)]:
            wall, cpu = case.timed(fns[impl], inputs)
            times[impl].append(wall)
            cpu_times[impl].append(cpu)
    if not spec['repeats']:                     # the warm-up call is the only measurement
        times = {impl: [t] for impl, t in warmup.items()}
        for name in rates:
            mm[name].append(case.matmul_gflops(name))
    result = dict(spec, times_s=times, cpu_times_s=cpu_times, warmup_s=warmup, matmul_gflops=mm, peak_bytes=peaks,
                  errors=errors,
                  threads=case.torch.get_num_threads(), macs={}, chunks={})
    for impl in impls:
        result['macs'][impl] = case.macs(impl)
        if impl_method(impl, spec['method']) is not None:
            result['chunks'][impl] = case.chunk_info(impl)
            result.setdefault('methods', {})[impl] = case.resolved(impl)
    return result


#: ``--network``: (reduction r of the attention's query/key channels, residual scale of the ResBlocks and of the
#: attention, ResBlock activation, x2 upsampler) of the paper's two networks (PAPER.md, section 2)
NETWORKS = {'pa-edsr': (8, 0.1, 'relu', True), 'panet': (2, 1.0, 'prelu', False)}


def network_title(network: str) -> str:
    """The name of a --network in the step table's header."""
    return 'PA-EDSR x2' if network == 'pa-edsr' else 'PANet'


def build_network(torch: ModuleType, pa: ModuleType, network: str, channels: int, blocks: int,
                  attention: Optional[AttentionFn], channels_last: bool = False) -> nn.Module:
    """A torch-only PA-EDSR x2 or PANet (colour): the registered ``PAEDSRNet``'s / ``PANet``'s layers, sizes and
    order (no mean shifts, no rgb_range scaling; tests/test_tools checks the parameter shapes against theirs).

    ``attention`` is None (the network without its attention block) or ``fn(query, keys, values)``;
    ``channels_last``: weights and input in channels-last format, as the registered networks run (the released
    ones run NCHW).
    """
    nn = torch.nn
    reduction, res_scale, act, upsample = NETWORKS[network]

    class Res(nn.Module):
        def __init__(self) -> None:
            """conv 3x3, ReLU (PReLU for PANet), conv 3x3."""
            super().__init__()
            self.body = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1),
                                      nn.ReLU(True) if act == 'relu' else nn.PReLU(),
                                      nn.Conv2d(channels, channels, 3, padding=1))

        def forward(self, x: Tensor) -> Tensor:
            """The residual block: ``x`` plus the scaled body."""
            return x + res_scale * self.body(x)

    class Attention(nn.Module):
        def __init__(self) -> None:
            """The block's 1x1 query / key / value embeddings (with PReLU) and its 5 pyramid scales."""
            super().__init__()
            reduced = channels // reduction
            self.query = nn.Sequential(nn.Conv2d(channels, reduced, 1), nn.PReLU())
            self.key = nn.Sequential(nn.Conv2d(channels, reduced, 1), nn.PReLU())
            self.value = nn.Sequential(nn.Conv2d(channels, channels, 1), nn.PReLU())
            self.scales = pa.pyramid_scales(5)

        def forward(self, x: Tensor) -> Tensor:
            """``attention`` over the pyramid of ``x``, plus the scaled input."""
            levels = pa.build_pyramid(x, self.scales)
            out = attention(self.query(x), [self.key(t) for t in levels], [self.value(t) for t in levels])
            return out + res_scale * x

    class Net(nn.Module):
        def __init__(self) -> None:
            """Head conv; body: half the blocks, the attention, the other half, a conv; tail (x2 upsampler: PA-EDSR)."""
            super().__init__()
            body = [Res() for _ in range(blocks // 2)] + ([Attention()] if attention else [])
            self.head = nn.Conv2d(3, channels, 3, padding=1)
            self.body = nn.Sequential(*body, *[Res() for _ in range(blocks - blocks // 2)],
                                      nn.Conv2d(channels, channels, 3, padding=1))
            up = [nn.Conv2d(channels, 4 * channels, 3, padding=1), nn.PixelShuffle(2)] if upsample else []
            self.tail = nn.Sequential(*up, nn.Conv2d(channels, 3, 3, padding=1))

        def forward(self, x: Tensor) -> Tensor:
            """The network's output for the image batch ``x`` (global residual around the body)."""
            feat = self.head(x.contiguous(memory_format=torch.channels_last) if channels_last else x)
            return self.tail(self.body(feat) + feat).contiguous()

    net = Net()
    return net.to(memory_format=torch.channels_last) if channels_last else net


def measure_step(spec: Spec) -> Spec:
    """Training steps (forward, L1 loss, backward, Adam) of PA-EDSR x2 or PANet with and without its attention.

    With ``spec['train']`` False: whole-network forward passes (no gradients) instead.
    """
    case = Case(dict(spec, **{'pass': 'fwd+bwd'}))
    torch, pa = case.torch, case.pa
    torch.manual_seed(0)
    variants = {'without attention': None}
    for impl in spec['impls']:
        variants[f'with {impl}'] = case.fn(impl)
    half = case.dtype != torch.float32
    steps = {}
    for name, fn in variants.items():
        net = build_network(torch, pa, spec.get('network', 'pa-edsr'), spec['channels'], spec['blocks'], fn,
                            channels_last=name != 'with released').to(case.device)
        opt = torch.optim.Adam(net.parameters(), lr=1e-4)
        # --dtype: the whole network under autocast, except the released block's, which runs as released
        amp = half and name != 'with released'

        def step(net: nn.Module = net, opt: Optimizer = opt, amp: bool = amp) -> None:
            """One training step (or forward pass) of ``net`` on a random batch; synchronised."""
            x = torch.rand(spec['batch'], 3, spec['size'], spec['size'], device=case.device)
            with torch.autocast(case.device.type, dtype=case.dtype, enabled=amp):
                if not spec.get('train', True):
                    with torch.no_grad():
                        net(x)
                    case.sync()
                    return
                scale = 2 if NETWORKS[spec.get('network', 'pa-edsr')][3] else 1
                gt = torch.rand(spec['batch'], 3, scale * spec['size'], scale * spec['size'], device=case.device)
                opt.zero_grad(set_to_none=True)
                loss = torch.nn.functional.l1_loss(net(x).float(), gt)
            loss.backward()
            opt.step()
            case.sync()
        steps[name] = step
    times = {name: [] for name in steps}
    for step in steps.values():
        step()                                  # warm-up
    for _ in range(max(spec['repeats'], 1)):
        for name, step in steps.items():
            t0 = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - t0)
    out = dict(spec, step_s={name: statistics.median(ts) for name, ts in times.items()},
               step_spread_s={name: [min(ts), max(ts)] for name, ts in times.items()})
    base = out['step_s']['without attention']
    out['attention_share'] = {name[5:]: 1 - base / t for name, t in out['step_s'].items()
                              if name.startswith('with ') and not (half and name == 'with released')}
    if 'with fast' in times and 'with released' in times:
        per_round = [a / b for a, b in zip(times['with fast'], times['with released'])]
        out['fast_over_released'] = statistics.median(per_round)
        out['fast_over_released_spread'] = [min(per_round), max(per_round)]
    return out


def step_table(result: Spec) -> str:
    """The markdown table of a --step result: each variant's median time and the attention's share of it."""
    what = 'training step' if result.get('train', True) else 'forward'
    lines = [f"| {network_title(result.get('network', 'pa-edsr'))} {what} | batch | input | median time (min-max) "
             '| attention share |',
             '|---|---|---|---|---|']
    for name, t in result['step_s'].items():
        lo, hi = result['step_spread_s'][name]
        share = result['attention_share'].get(name[5:]) if name.startswith('with ') else None
        lines.append(f"| {name} | {result['batch']} | {result['size']}x{result['size']} | "
                     f"{t * 1e3:.0f} ms ({lo * 1e3:.0f}-{hi * 1e3:.0f}) | "
                     f"{'-' if share is None else f'{100 * share:.0f}%'} |")
    if 'fast_over_released' in result:
        lo, hi = result['fast_over_released_spread']
        lines.append(f"\nwith fast / with released: {result['fast_over_released']:.2f} ({lo:.2f}-{hi:.2f}) per round")
    return '\n'.join(lines)


def worker(spec: Spec) -> Spec:
    """What a child process (``--worker``) measures: ``spec['mode']`` is 'step', 'memory' or 'time'."""
    if spec.get('flush_denormal'):
        # before any parallel operation: torch's CPU threads copy the mode when they start
        # (panet_mm/utils/denormals.py, which this torch-only child does not import)
        import torch
        torch.set_flush_denormal(True)
    if spec['mode'] == 'step':
        return measure_step(spec)
    return measure_memory(spec) if spec['mode'] == 'memory' else measure_times(spec)


#: Settings of every child process, from the command line (``--flush-denormal``).
CHILD_OPTIONS: dict = {}


def run_child(spec: Spec, timeout: float) -> Spec:
    """Run ``worker(spec)`` in a fresh interpreter; return its dict or an error dict."""
    cmd = [sys.executable, osp.abspath(__file__), '--worker', json.dumps(dict(spec, **CHILD_OPTIONS))]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return dict(spec, error=f'timeout after {timeout} s')
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith('{')]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or [f'exit code {proc.returncode}']
        return dict(spec, error=tail[0][:200])
    return json.loads(lines[-1])


# ----------------------------------------------------------------------------- summary
def summarise(timing: Spec, memory: Dict[str, Spec], impls: Sequence[str], dtype: str) -> Dict[str, Record]:
    """One record per implementation of a case: medians, per-round ratios, rates, memory."""
    out = {}
    for impl in impls:
        rec = {'impl': impl}
        if impl in memory:
            for key in ('peak_bytes', 'first_call_s', 'error', 'skipped'):
                if key in memory[impl]:
                    rec[key] = memory[impl][key]
        if impl in timing.get('peak_bytes', {}):
            rec['peak_bytes'] = timing['peak_bytes'][impl]
        if 'error' in timing:
            rec.setdefault('error', timing['error'])
        elif impl in timing.get('errors', {}):
            rec.setdefault('error', timing['errors'][impl])
        elif impl in timing.get('times_s', {}):
            ts = timing['times_s'][impl]
            rec['time_s'] = statistics.median(ts)
            rec['time_spread_s'] = [min(ts), max(ts)]
            cpu = timing['cpu_times_s'].get(impl)
            if cpu:
                rec['cpu_time_s'] = statistics.median(cpu)
            rec['macs'] = timing['macs'][impl]
            rec['gflops'] = 2 * rec['macs'] / rec['time_s'] / 1e9
            mm = timing['matmul_gflops']
            own = mm.get(dtype if impl_method(impl, '') is not None else 'float32') or mm['float32']
            rec['matmul_share'] = rec['gflops'] / statistics.median(own)
            if len(own) == len(ts):             # per round: this round's time against this round's torch.mm
                shares = [2 * rec['macs'] / t / 1e9 / rate for t, rate in zip(ts, own)]
                rec['matmul_share_spread'] = [min(shares), max(shares)]
            if impl in timing['chunks']:
                rec['batch_chunk'], rec['chunk_size'] = timing['chunks'][impl]
                rec['method'] = timing['methods'][impl]
            for base in BASELINES:
                if base != impl and base in timing['times_s']:
                    per_round = [a / b for a, b in zip(ts, timing['times_s'][base])]
                    rec[f'ratio_{base}'] = statistics.median(per_round)
                    rec[f'ratio_{base}_spread'] = [min(per_round), max(per_round)]
        out[impl] = rec
    if 'matmul_gflops' in timing:
        for impl in out:
            out[impl]['matmul_gflops'] = {k: statistics.median(v) for k, v in timing['matmul_gflops'].items()}
    return out


# ----------------------------------------------------------------------------- report
def fmt_time(r: Optional[Record]) -> str:
    """A record's median time for the tables (or why it has none: skipped, error, '-')."""
    if r is None:
        return '-'
    if 'skipped' in r:
        return r['skipped']
    if 'error' in r:
        return f"error: {r['error']}"
    if 'time_s' not in r:
        return '-'
    return f"{r['time_s'] * 1e3:.0f} ms" if r['time_s'] < 10 else f"{r['time_s']:.1f} s"


def fmt_mem(r: Optional[Record]) -> str:
    """A record's peak memory in MB or GB for the tables ('-' where unmeasured)."""
    if r is None or 'peak_bytes' not in r:
        return '-'
    mb = r['peak_bytes'] / 2**20
    return f'{mb / 1024:.2f} GB' if mb >= 1024 else f'{mb:.0f} MB'


def fmt_ratio(r: Optional[Record], base: str) -> str:
    """A record's median time ratio to the baseline ``base``, with the per-round min-max ('-' where none)."""
    if not r or f'ratio_{base}' not in r:
        return '-'
    lo, hi = r[f'ratio_{base}_spread']
    return f"{r[f'ratio_{base}']:.2f} ({lo:.2f}-{hi:.2f})"


def fmt_share(r: Record) -> str:
    """The rate and its share of ``torch.mm``'s, with the per-round shares' spread (the machine's noise)."""
    spread = r.get('matmul_share_spread')
    rounds = f', {100 * spread[0]:.0f}-{100 * spread[1]:.0f}%' if spread else ''
    return f"{r['gflops']:.0f} ({100 * r['matmul_share']:.0f}%{rounds})"


def mem_ratio(a: Optional[Record], b: Optional[Record]) -> str:
    """Peak memory of ``a`` over that of ``b`` ('-' where either is unmeasured)."""
    if not a or not b or not a.get('peak_bytes') or not b.get('peak_bytes'):
        return '-'
    return f"{a['peak_bytes'] / b['peak_bytes']:.3f}"


def markdown_table(rows: Rows, fast: str = 'fast') -> str:
    """Fast kernel against the baselines, one line per (pass, batch, size)."""
    lines = ['| pass | batch | size | fast | released | reference | fast / released (min-max) '
             '| fast / reference (min-max) | mm GFLOP/s f32 / bf16 | fast GFLOP/s (share of mm, rounds) '
             '| fast peak mem | released peak mem | mem ratio | fast method, chunk (images x pixels) |',
             '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|']
    for key in sorted(rows, key=lambda k: (k[0] != 'fwd', k[1], k[2])):
        recs = rows[key]
        f, rel, ref = recs.get(fast), recs.get('released'), recs.get('reference')
        mm = (f or rel or ref or {}).get('matmul_gflops', {})
        mm_txt = f"{mm['float32']:.0f} / {mm['bfloat16']:.0f}" if 'float32' in mm else '-'
        rate = fmt_share(f) if f and 'gflops' in f else '-'
        chunk = f"{f['method']}, {f['batch_chunk']} x {f['chunk_size']}" if f and 'chunk_size' in f else '-'
        lines.append(f'| {key[0]} | {key[1]} | {key[2]}x{key[2]} | {fmt_time(f)} | {fmt_time(rel)} | '
                     f"{fmt_time(ref)} | {fmt_ratio(f, 'released')} | {fmt_ratio(f, 'reference')} | {mm_txt} | "
                     f'{rate} | {fmt_mem(f)} | {fmt_mem(rel)} | {mem_ratio(f, rel)} | {chunk} |')
    return '\n'.join(lines)


def methods_table(rows: Rows, methods: Sequence[str]) -> str:
    """Time of every formulation relative to the fastest, one line per case."""
    lines = ['| pass | batch | size | ' + ' | '.join(methods) + ' | fastest |',
             '|---|---|---|' + '---|' * (len(methods) + 1)]
    for key in sorted(rows, key=lambda k: (k[0] != 'fwd', k[1], k[2])):
        times = {m: rows[key].get(f'fast:{m}', {}).get('time_s') for m in methods}
        known = {m: t for m, t in times.items() if t}
        if not known:
            continue
        best = min(known, key=known.get)
        cells = [f'{fmt_time(rows[key][f"fast:{m}"])} ({known[m] / known[best]:.2f}x)' if m in known else '-'
                 for m in methods]
        lines.append(f'| {key[0]} | {key[1]} | {key[2]}x{key[2]} | ' + ' | '.join(cells) + f' | {best} |')
    return '\n'.join(lines)


def method_records(rows: Rows, methods: Sequence[str], args: argparse.Namespace) -> List[Dict[str, Any]]:
    """The measured table the 'auto' rule is checked against: one entry per case."""
    out = []
    for (pass_, batch, size), recs in sorted(rows.items()):
        times = {m: recs[f'fast:{m}']['time_s'] for m in methods if 'time_s' in recs.get(f'fast:{m}', {})}
        if not times:
            continue
        spread = {m: recs[f'fast:{m}']['time_spread_s'] for m in times}
        out.append(dict(device=args.device, dtype=args.dtype, threads=args.threads, channels=args.channels,
                        reduction=args.reduction, levels=args.levels, size=size, batch=batch,
                        backward=pass_ == 'fwd+bwd', times_s=times, spread_s=spread,
                        fastest=min(times, key=times.get)))
    return out


def plot(records: Sequence[Record], path: str) -> None:
    """Write time and peak memory against query pixels (log-log), one line per implementation, to ``path``."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    styles = {'fast': '-o', 'released': '--s', 'reference': ':^'}
    for (pass_, batch) in sorted({(r['pass'], r['batch']) for r in records}):
        for impl, style in styles.items():
            pts = sorted((r['size'] ** 2, r) for r in records
                         if r['pass'] == pass_ and r['batch'] == batch and r['impl'] == impl and 'time_s' in r)
            if not pts:
                continue
            px = [p for p, _ in pts]
            label = f'{impl}, {pass_}, batch {batch}'
            axes[0].plot(px, [r['time_s'] for _, r in pts], style, label=label)
            mem = [(p, r['peak_bytes'] / 2**20) for p, r in pts if r.get('peak_bytes')]
            if mem:
                axes[1].plot([p for p, _ in mem], [m for _, m in mem], style, label=label)
    for ax, ylabel in zip(axes, ('time per call (s)', 'peak memory (MiB)')):
        ax.set_xscale('log')
        ax.set_yscale('log')
        ax.set_xlabel('query pixels (H*W)')
        ax.set_ylabel(ylabel)
        ax.grid(True, which='both', alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle('Pyramid attention: chunked kernel vs the released block and the reference')
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def parse_sizes(text: str) -> List[int]:
    """--sizes / --fb-sizes: comma-separated integers ('' for none)."""
    return [int(s) for s in text.split(',') if s.strip()]


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """The command line (``argv``, default ``sys.argv[1:]``); see the module docstring."""
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument('--device', choices=['cpu', 'cuda'], default='cpu')
    p.add_argument('--sizes', type=parse_sizes, default=None,
                   help='square input sizes for the forward pass (default: 32,48,64,96,128 on CPU; '
                        '48,64,96,128,192,256 on CUDA)')
    p.add_argument('--fb-sizes', type=parse_sizes, default=None,
                   help='sizes for forward+backward at --fb-batch (default: 32,48; "" for none)')
    p.add_argument('--channels', type=int, default=64, help='value channels C')
    p.add_argument('--reduction', type=int, default=2, help='query/key channels are C / reduction')
    p.add_argument('--levels', type=int, default=5)
    p.add_argument('--batch', type=int, default=1, help='batch of the forward-pass sizes')
    p.add_argument('--fb-batch', type=int, default=16, help='batch of the forward+backward sizes')
    p.add_argument('--repeats', type=int, default=3, help='timed rounds after the warm-up round (median)')
    p.add_argument('--dtype', choices=DTYPES, default='float32',
                   help='dtype of the fast kernel (autocast); the baselines run in float32')
    p.add_argument('--max-ref-gb', type=float, default=8.0,
                   help="skip the baselines where the (B, H*W, L) float32 score map alone exceeds this")
    p.add_argument('--memory-budget-mb', type=float, default=None,
                   help="the fast kernel's memory_budget_mb (default: the kernel's)")
    p.add_argument('--method', default='auto', help="the fast kernel's method")
    p.add_argument('--methods', default='', help='comma-separated formulations to time side by side '
                   '(adds fast:<method> implementations and a table of their times)')
    p.add_argument('--method-table', default=None, help='write the per-case times of --methods here (JSON)')
    p.add_argument('--impls', default='fast,released,reference', help='implementations to run')
    p.add_argument('--no-memory', action='store_true', help='skip the per-implementation memory children')
    p.add_argument('--threads', type=int, default=0, help='torch threads in the children (0: torch default)')
    p.add_argument('--timeout', type=float, default=1800, help='seconds per child process')
    p.add_argument('--plot', default=None, help='write a time / memory plot (PNG) here')
    p.add_argument('--json', default=None, help='write every measurement here')
    p.add_argument('--step', default=None, metavar='BATCH,SIZE,CHANNELS,BLOCKS',
                   help='instead of the block: time training steps of the --network with and without the attention '
                        '(e.g. 16,48,256,32 for PA-EDSR\'s training, 1,512,64,80 --network panet --forward-only for '
                        'the full PANet on a 512x512 photo)')
    p.add_argument('--network', choices=sorted(NETWORKS), default='pa-edsr',
                   help='--step: PA-EDSR x2 (C=256 r=8 attention) or PANet (colour, C=64 r=2)')
    p.add_argument('--forward-only', action='store_true', help='--step: whole-network forward passes instead')
    p.add_argument('--targets', action='store_true',
                   help="only the rows of the README's targets (block forward / forward+backward, C=256, PA-EDSR "
                        'x2 forward float32 and bfloat16), fast against released, with the load around each')
    p.add_argument('--flush-denormal', action='store_true',
                   help='flush denormal floats to zero in the children (every implementation alike), as '
                   'tools/restore.py does by default')
    p.add_argument('--worker', default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


# (row, mode, case, target ratio of fast / released): the rows of issue 15's targets (--targets)
TARGETS = [
    ('block fwd 64x64, C=64 r=2', 'time', dict(batch=1, size=64, channels=64, reduction=2, **{'pass': 'fwd'}), 0.30),
    ('block fwd+bwd 16 x 48x48, C=64 r=2', 'time',
     dict(batch=16, size=48, channels=64, reduction=2, **{'pass': 'fwd+bwd'}), 0.30),
    ('block fwd 64x64, C=256 r=8', 'time', dict(batch=1, size=64, channels=256, reduction=8, **{'pass': 'fwd'}), 0.25),
    ('PA-EDSR x2 fwd 64x64, float32', 'step', dict(batch=1, size=64, channels=256, reduction=8, blocks=32,
                                                   dtype='float32', train=False), 0.50),
    ('PA-EDSR x2 fwd 64x64, bfloat16 (released: float32)', 'step',
     dict(batch=1, size=64, channels=256, reduction=8, blocks=32, dtype='bfloat16', train=False), 0.25),
]


def target_row(name: str, mode: str, result: Spec, target: float, load: str) -> str:
    """One markdown line of the --targets table."""
    if 'error' in result:
        return f"| {name} | error: {result['error']} | | | {target:.2f} | - | | | {load} |"
    if mode == 'step':
        fast, rel = result['step_s']['with fast'], result['step_s']['with released']
        ratio, (lo, hi) = result['fast_over_released'], result['fast_over_released_spread']
        rates = share = '-'
    else:
        recs = summarise(result, {}, ['fast', 'released'], result['dtype'])
        fast, rel = recs['fast']['time_s'], recs['released']['time_s']
        ratio, (lo, hi) = recs['fast']['ratio_released'], recs['fast']['ratio_released_spread']
        mm = recs['fast']['matmul_gflops']
        rates = f"{mm['float32']:.0f} / {mm['bfloat16']:.0f}"
        share = fmt_share(recs['fast'])
    met = 'yes' if ratio <= target else 'no'
    times = f'{fmt_time(dict(time_s=fast))} | {fmt_time(dict(time_s=rel))}'
    return f'| {name} | {times} | {ratio:.2f} ({lo:.2f}-{hi:.2f}) | {target:.2f} | {met} | {rates} | {share} | {load} |'


def run_targets(args: argparse.Namespace) -> int:
    """The target rows, each in one child (fast and released interleaved), with the load around it."""
    print(f'device={args.device} threads={args.threads or "torch default"} repeats={args.repeats} '
          f'flush_denormal={args.flush_denormal} fused CPU step={native_status(args.device)} on {os.cpu_count()} CPUs',
          flush=True)
    lines = ['| row | fast | released | fast / released (min-max) | target | met | mm GFLOP/s f32 / bf16 '
             '| fast GFLOP/s (share of mm, rounds) | load average before / after |',
             '|---|---|---|---|---|---|---|---|---|']
    results = []
    for name, mode, case, target in TARGETS:
        spec = dict(dict(device=args.device, levels=5, repeats=args.repeats, method=args.method, dtype='float32',
                         memory_budget_mb=args.memory_budget_mb, threads=args.threads, impls=['fast', 'released'],
                         mode=mode), **case)
        before = os.getloadavg()[0]
        result = run_child(spec, args.timeout)
        load = f'{before:.1f} / {os.getloadavg()[0]:.1f}'
        lines.append(target_row(name, mode, result, target, load))
        print(lines[-1], flush=True)
        results.append(dict(result, row=name, target=target, load_average=load))
    print()
    print('\n'.join(lines))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(results, f, indent=1)
    return 0


def run_step(args: argparse.Namespace) -> int:
    """--step: PA-EDSR x2 or PANet steps (or forwards) with and without the attention."""
    try:
        batch, size, channels, blocks = (int(v) for v in args.step.split(','))
    except ValueError:
        raise SystemExit(f'--step must be BATCH,SIZE,CHANNELS,BLOCKS, e.g. 16,48,256,32; '
                         f'got {args.step!r}') from None
    impls = [s.strip() for s in args.impls.split(',') if s.strip()]
    before = os.getloadavg()[0]
    result = run_child(dict(mode='step', device=args.device, batch=batch, size=size, channels=channels,
                            network=args.network, reduction=NETWORKS[args.network][0], blocks=blocks, levels=5,
                            repeats=args.repeats, method=args.method, dtype=args.dtype,
                            memory_budget_mb=args.memory_budget_mb, threads=args.threads,
                            impls=impls, train=not args.forward_only), args.timeout)
    if 'error' in result:
        print(f"error: {result['error']}", file=sys.stderr)
        return 1
    print(step_table(result))
    print(f'load average before / after: {before:.1f} / {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(result, f, indent=1)
    return 0


def run_case(args: argparse.Namespace, common: Spec, impls: Sequence[str]) -> Dict[str, Record]:
    """Memory children (CPU) and the timing child of one (pass, batch, size); their summary."""
    pass_, batch, size = common['pass'], common['batch'], common['size']
    score_gb = reference_score_map_bytes(batch, size, args.levels) / 1e9
    skipped = {impl: dict(skipped=f'skipped (est. {score_gb:.1f} GB score map)')
               for impl in impls if impl in BASELINES and score_gb > args.max_ref_gb}
    run = [impl for impl in impls if impl not in skipped]
    memory = dict(skipped)
    if not args.no_memory and args.device != 'cuda':
        for impl in run:
            memory[impl] = run_child(dict(common, mode='memory', impl=impl), args.timeout)
    before = os.getloadavg()[0]
    timing = run_child(dict(common, mode='time', impls=run), args.timeout) if run else {}
    load = (before, os.getloadavg()[0])
    summary = summarise(timing, memory, impls, args.dtype)
    for impl, rec in summary.items():
        rec['load_average'] = load
        print(f'  {pass_:8s} batch {batch:3d} {size:4d}x{size:<4d} {impl:12s} {fmt_time(rec):>24s}  '
              f"vs released {fmt_ratio(rec, 'released'):>18s}  peak {fmt_mem(rec):>8s}  "
              f'load {load[0]:.1f} / {load[1]:.1f}', flush=True)
    return summary


def run_block(args: argparse.Namespace) -> int:
    """The block's table: every (pass, batch, size) of the arguments."""
    cuda = args.device == 'cuda'
    sizes = args.sizes if args.sizes is not None else ([48, 64, 96, 128, 192, 256] if cuda else [32, 48, 64, 96, 128])
    fb_sizes = args.fb_sizes if args.fb_sizes is not None else [32, 48]
    methods = [m.strip() for m in args.methods.split(',') if m.strip()]
    impls = [s.strip() for s in args.impls.split(',') if s.strip()] + [f'fast:{m}' for m in methods]
    jobs = [('fwd', args.batch, s) for s in sizes] + [('fwd+bwd', args.fb_batch, s) for s in fb_sizes]
    print(f'device={args.device} C={args.channels} r={args.reduction} levels={args.levels} repeats={args.repeats} '
          f'dtype={args.dtype} memory_budget_mb={args.memory_budget_mb} method={args.method} '
          f'fused CPU step={native_status(args.device)} '
          f'load average={os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs', flush=True)
    records, rows = [], {}
    for pass_, batch, size in jobs:
        common = dict(device=args.device, size=size, batch=batch, channels=args.channels, reduction=args.reduction,
                      levels=args.levels, repeats=args.repeats, method=args.method, dtype=args.dtype,
                      memory_budget_mb=args.memory_budget_mb, threads=args.threads, **{'pass': pass_})
        summary = rows[(pass_, batch, size)] = run_case(args, common, impls)
        for impl, rec in summary.items():
            records.append(dict(rec, **{'pass': pass_}, batch=batch, size=size, device=args.device,
                                dtype=args.dtype if impl_method(impl, '') is not None else 'float32',
                                channels=args.channels, reduction=args.reduction, levels=args.levels))
    print()
    print(markdown_table(rows, 'fast' if 'fast' in impls else (impls[0] if impls else 'fast')))
    write_outputs(args, rows, records, methods)
    return 0


def write_outputs(args: argparse.Namespace, rows: Rows, records: List[Record], methods: Sequence[str]) -> None:
    """Print the --methods table and write the --method-table, --json and --plot files asked for."""
    if methods:
        print()
        print(methods_table(rows, methods))
        if args.method_table:
            with open(args.method_table, 'w') as f:
                json.dump(method_records(rows, methods, args), f, indent=1)
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(records, f, indent=1)
    if args.plot:
        plot(records, args.plot)
        print(f'\nplot written to {args.plot}')


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run a --worker child's measurement (JSON on stdout), the --targets rows, a --step table or the block's table."""
    args = parse_args(argv)
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return 0
    CHILD_OPTIONS['flush_denormal'] = args.flush_denormal
    if args.targets:
        return run_targets(args)
    if args.step:
        return run_step(args)
    return run_block(args)


if __name__ == '__main__':
    sys.exit(main())
