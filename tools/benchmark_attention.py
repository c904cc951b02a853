"""Benchmark the chunked pyramid attention kernel against the straightforward reference.

Runs with torch alone: ``panet_mm/ops`` is loaded by file path, so neither mmagic nor mmengine (nor
the ``panet_mm`` package) is imported.

Every (implementation, pass, size) is measured in a fresh child process, so that peak memory is
clean: on CPU the peak resident set size of the child minus its resident size just before the first
call (``ru_maxrss`` minus ``/proc/self/statm``); on CUDA ``torch.cuda.max_memory_allocated`` minus
the memory allocated before the call. The first call is the warm-up (and the memory measurement);
the time is the median wall time of ``--repeats`` further calls (the process CPU time is reported
too: on a shared machine it is the steadier of the two). Inputs are random tensors of the pyramid's
sizes (query ``C/r`` channels, keys ``C/r``, values ``C``, levels ``floor(s*H) x floor(s*W)``
for ``s = 1, 0.9, ...``); the 1x1 embeddings and the pyramid are not timed, for either side.

Example (the default CPU run, about 5 minutes on 2 cores)::

    python tools/benchmark_attention.py --plot attention.png --json attention.json
"""
import argparse
import importlib.util
import json
import os
import os.path as osp
import resource
import statistics
import subprocess
import sys
import time

OPS_DIR = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'panet_mm', 'ops')


def load_kernel():
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


def level_sizes(size, levels):
    """``(H_l, W_l)`` of every pyramid level for a square ``size x size`` input."""
    return [(int(size * (1 - i / 10)), int(size * (1 - i / 10))) for i in range(levels)]


def reference_score_map_bytes(batch, size, levels, bytes_per_el=4):
    """Bytes of the reference's (B, H*W, L) score map (its peak is a few times this)."""
    return batch * size * size * sum(h * w for h, w in level_sizes(size, levels)) * bytes_per_el


def current_rss_bytes():
    try:
        with open('/proc/self/statm') as f:
            return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def peak_rss_bytes():
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == 'darwin' else peak * 1024     # bytes on macOS, KiB on Linux


# ----------------------------------------------------------------------------- child process
def worker(spec):
    """Measure one (impl, pass, size); return a dict (runs in a fresh process)."""
    import torch
    if spec.get('threads'):
        torch.set_num_threads(spec['threads'])
    pa = load_kernel()
    device = torch.device(spec['device'])
    cuda = device.type == 'cuda'
    batch, size, channels, reduction = spec['batch'], spec['size'], spec['channels'], spec['reduction']
    backward = spec['pass'] == 'fwd+bwd'
    if spec['impl'] == 'reference':
        def kernel(q, ks, vs):
            return pa.pyramid_attention_reference(q, ks, vs)
    else:
        def kernel(q, ks, vs):
            return pa.pyramid_attention(q, ks, vs, memory_budget_mb=spec['memory_budget_mb'], method=spec['method'])

    def make(b, s):
        g = torch.Generator(device='cpu').manual_seed(0)
        sizes = level_sizes(s, spec['levels'])
        q = torch.randn(b, channels // reduction, s, s, generator=g).to(device)
        ks = [torch.randn(b, channels // reduction, h, w, generator=g).to(device) for h, w in sizes]
        vs = [torch.randn(b, channels, h, w, generator=g).to(device) for h, w in sizes]
        grad = torch.randn(b, channels, s, s, generator=g).to(device)
        if backward:
            for t in (q, *ks, *vs):
                t.requires_grad_()
        return q, ks, vs, grad

    def call(q, ks, vs, grad):
        if backward:
            out = kernel(q, ks, vs)
            out.backward(grad)
        else:
            with torch.no_grad():
                kernel(q, ks, vs)
        if cuda:
            torch.cuda.synchronize()

    call(*make(1, 12))                      # load the BLAS/softmax kernels outside the measurement
    inputs = make(batch, size)
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base = current_rss_bytes()
    t0 = time.perf_counter()
    call(*inputs)
    first = time.perf_counter() - t0
    peak = (torch.cuda.max_memory_allocated() if cuda else peak_rss_bytes()) - base
    times, cpu_times = [], []
    for _ in range(spec['repeats']):
        if backward:
            for t in (inputs[0], *inputs[1], *inputs[2]):
                t.grad = None
        t0, c0 = time.perf_counter(), time.process_time()
        call(*inputs)
        times.append(time.perf_counter() - t0)
        cpu_times.append(time.process_time() - c0)
    result = dict(spec, time_s=statistics.median(times) if times else first, first_call_s=first,
                  cpu_time_s=statistics.median(cpu_times) if cpu_times else None,
                  peak_bytes=max(int(peak), 0), threads=torch.get_num_threads())
    if spec['impl'] == 'fast':
        sizes = level_sizes(size, spec['levels'])
        dtype = torch.float32
        images = pa.choose_batch_chunk(size, size, sizes, batch, dtype=dtype, method=spec['method'], device=device)
        result['batch_chunk'] = images
        result['chunk_size'] = pa.choose_chunk_size(size, size, sizes, images, dtype=dtype,
                                                    memory_budget_mb=spec['memory_budget_mb'], method=spec['method'],
                                                    device=device, channels=channels)
    return result


def run_child(spec, timeout):
    """Run ``worker(spec)`` in a fresh interpreter; return its dict or an error dict."""
    cmd = [sys.executable, osp.abspath(__file__), '--worker', json.dumps(spec)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return dict(spec, error=f'timeout after {timeout} s')
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith('{')]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or [f'exit code {proc.returncode}']
        return dict(spec, error=tail[0][:200])
    return json.loads(lines[-1])


# ----------------------------------------------------------------------------- report
def fmt_time(r):
    if r is None:
        return '-'
    if 'skipped' in r:
        return r['skipped']
    if 'error' in r:
        return f"error: {r['error']}"
    return f"{r['time_s'] * 1e3:.0f} ms" if r['time_s'] < 10 else f"{r['time_s']:.1f} s"


def fmt_mem(r):
    if r is None or 'peak_bytes' not in r:
        return '-'
    mb = r['peak_bytes'] / 2**20
    return f'{mb / 1024:.2f} GB' if mb >= 1024 else f'{mb:.0f} MB'


def ratio(fast, ref, key):
    if not fast or not ref or key not in fast or key not in ref or not ref[key]:
        return '-'
    return f'{fast[key] / ref[key]:.3f}'


def markdown_table(rows):
    lines = ['| pass | batch | size | fast time | reference time | time ratio | CPU-time ratio | fast peak mem '
             '| reference peak mem | mem ratio | fast chunk (images x pixels) |',
             '|---|---|---|---|---|---|---|---|---|---|---|']
    for key in sorted(rows, key=lambda k: (k[0] != 'fwd', k[1], k[2])):
        fast, ref = rows[key].get('fast'), rows[key].get('reference')
        chunk = f"{fast['batch_chunk']} x {fast['chunk_size']}" if fast and 'chunk_size' in fast else '-'
        lines.append(f'| {key[0]} | {key[1]} | {key[2]}x{key[2]} | {fmt_time(fast)} | {fmt_time(ref)} | '
                     f"{ratio(fast, ref, 'time_s')} | {ratio(fast, ref, 'cpu_time_s')} | "
                     f"{fmt_mem(fast)} | {fmt_mem(ref)} | {ratio(fast, ref, 'peak_bytes')} | {chunk} |")
    return '\n'.join(lines)


def plot(records, path):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for (pass_, batch) in sorted({(r['pass'], r['batch']) for r in records}):
        for impl, style in (('fast', '-o'), ('reference', '--s')):
            pts = sorted((r['size'] ** 2, r) for r in records
                         if r['pass'] == pass_ and r['batch'] == batch and r['impl'] == impl and 'time_s' in r)
            if not pts:
                continue
            px = [p for p, _ in pts]
            label = f'{impl}, {pass_}, batch {batch}'
            axes[0].plot(px, [r['time_s'] for _, r in pts], style, label=label)
            axes[1].plot(px, [r['peak_bytes'] / 2**20 for _, r in pts], style, label=label)
    for ax, ylabel in zip(axes, ('time per call (s)', 'peak memory (MiB)')):
        ax.set_xscale('log')
        ax.set_yscale('log')
        ax.set_xlabel('query pixels (H*W)')
        ax.set_ylabel(ylabel)
        ax.grid(True, which='both', alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle('Pyramid attention: chunked kernel vs reference')
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def parse_sizes(text):
    return [int(s) for s in text.split(',') if s.strip()]


def parse_args(argv=None):
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
    p.add_argument('--repeats', type=int, default=3, help='timed calls after the warm-up call (median)')
    p.add_argument('--max-ref-gb', type=float, default=8.0,
                   help="skip the reference where its (B, H*W, L) float32 score map alone exceeds this")
    p.add_argument('--memory-budget-mb', type=float, default=256.0, help="the fast kernel's memory_budget_mb")
    p.add_argument('--method', default='auto', help="the fast kernel's method")
    p.add_argument('--impls', default='fast,reference', help='implementations to run')
    p.add_argument('--threads', type=int, default=0, help='torch threads in the children (0: torch default)')
    p.add_argument('--timeout', type=float, default=1200, help='seconds per measurement')
    p.add_argument('--plot', default=None, help='write a time / memory plot (PNG) here')
    p.add_argument('--json', default=None, help='write every measurement here')
    p.add_argument('--worker', default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return 0
    cuda = args.device == 'cuda'
    sizes = args.sizes if args.sizes is not None else ([48, 64, 96, 128, 192, 256] if cuda else [32, 48, 64, 96, 128])
    fb_sizes = args.fb_sizes if args.fb_sizes is not None else [32, 48]
    impls = [s.strip() for s in args.impls.split(',') if s.strip()]
    jobs = [('fwd', args.batch, s) for s in sizes] + [('fwd+bwd', args.fb_batch, s) for s in fb_sizes]
    print(f'device={args.device} C={args.channels} r={args.reduction} levels={args.levels} repeats={args.repeats} '
          f'memory_budget_mb={args.memory_budget_mb} method={args.method}', flush=True)
    records, rows = [], {}
    for pass_, batch, size in jobs:
        for impl in impls:
            spec = dict(impl=impl, device=args.device, size=size, batch=batch, channels=args.channels,
                        reduction=args.reduction, levels=args.levels, repeats=args.repeats, method=args.method,
                        memory_budget_mb=args.memory_budget_mb, threads=args.threads, **{'pass': pass_})
            score_gb = reference_score_map_bytes(batch, size, args.levels) / 1e9
            if impl == 'reference' and score_gb > args.max_ref_gb:
                result = dict(spec, skipped=f'skipped (est. {score_gb:.1f} GB score map)')
            else:
                result = run_child(spec, args.timeout)
            records.append(result)
            rows.setdefault((pass_, batch, size), {})[impl] = result
            print(f'  {pass_:8s} batch {batch:3d} {size:4d}x{size:<4d} {impl:9s} {fmt_time(result):>24s}  '
                  f'peak {fmt_mem(result)}', flush=True)
    print()
    print(markdown_table(rows))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(records, f, indent=1)
    if args.plot:
        plot(records, args.plot)
        print(f'\nplot written to {args.plot}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
