#!/usr/bin/env bash
# GPU readiness check of the pyramid attention kernel on a bare machine: torch only (no mmagic /
# mmengine, no network), about 5 minutes on one GPU. Prints one markdown report and writes it, with
# the JSON measurements, to $OUT (default work_dirs/device_check).
#
#   bash tools/device_check.sh            # on the GPU machine, from the repository root
#   bash tools/device_check.sh --smoke    # the same steps on CPU at tiny sizes (checks the script)
#
# Steps, in this order (each bounded; DEADLINE below keeps the whole within the device tool's 600 s):
# (1) the environment; (2) tests/test_ops on CUDA (the gpu-marked tests: float32 against the float64
# reference, float16 / bfloat16 autocast, no host synchronisation in the chunk loop, chunk budget from
# free memory) and the CPU ops tests under this torch / numpy; (3) the GPU targets: PA-EDSR x2 training
# steps (batch 16, 48x48) with and without the attention (its share of a step), and the full PANet
# (80 ResBlocks) forward on a whole 512x512 image, float32 and bfloat16, with and without its attention;
# (4) the block benchmark against the released block's way: PANet sizes (C=64, r=2) forward up to a
# whole 512x512 image and forward+backward at training size (batch 16, 48x48), PA-EDSR sizes (C=256,
# r=8), bfloat16 at 512x512, with torch.cuda.max_memory_allocated; the README's target rows; (5) the
# four formulations side by side, the table the 'auto' rule is set from.
#
# The baselines are skipped where their score map alone would exceed 20 GB (one process runs every
# implementation of a case, so an out-of-memory baseline would cost the kernel's row too).
#
# panet_mm/__init__.py registers mmagic modules, so the tests import panet_mm.ops through a shim
# package whose __path__ is the real panet_mm folder (its __init__ is not run). pytest is taken from
# the interpreter, or from build/device_deps (`pip install --target build/device_deps pytest` on a
# machine with network, then carry that folder along).
set -u
case "${1:-}" in
    -h|--help)
        sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'
        exit 0 ;;
    ""|--smoke) ;;
    *)
        echo "error: unknown argument '$1'; use no argument on a GPU machine, --smoke on CPU, or --help" >&2
        exit 2 ;;
esac
cd "$(dirname "$0")/.."
ROOT=$PWD
# the interpreter: $PYTHON, else python3 where it imports torch, else the checkout's .venv
PY=${PYTHON:-python3}
if [ -z "${PYTHON:-}" ] && ! python3 -c 'import torch' >/dev/null 2>&1 && [ -x "$ROOT/.venv/bin/python" ]; then
    PY=$ROOT/.venv/bin/python
fi
if ! "$PY" -c 'import torch' >/dev/null 2>&1; then
    echo "error: torch is not importable by '$PY'; set PYTHON=/path/to/a/python/with/torch" >&2
    exit 2
fi
FAILED=0
OUT=${OUT:-$ROOT/work_dirs/device_check}
SMOKE=0
[ "${1:-}" = "--smoke" ] && SMOKE=1
if [ $SMOKE = 0 ] && ! "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' >/dev/null 2>&1; then
    echo "error: torch ('$PY') sees no CUDA device here; run this on the GPU machine, or pass --smoke to check the" \
         "script on CPU at tiny sizes" >&2
    exit 2
fi
mkdir -p "$OUT"
REPORT=$OUT/device_check.md
SHIM=$(mktemp -d)
trap 'rm -rf "$SHIM"' EXIT
mkdir -p "$SHIM/panet_mm"
echo "__path__ = [$("$PY" -c 'import sys; print(repr(sys.argv[1]))' "$ROOT/panet_mm")]" > "$SHIM/panet_mm/__init__.py"
export PYTHONPATH="$SHIM:$ROOT/build/device_deps${PYTHONPATH:+:$PYTHONPATH}"
T0=$(date +%s)

if [ $SMOKE = 1 ]; then
    # the test step on one file (the suite runs all of tests/test_ops on CPU anyway): it checks the step
    DEV=cpu; MARK="not slow"; REP=1; T_TEST=600; T_BENCH=600; TESTS=tests/test_ops/test_reference.py
    PANET=(--sizes 12 --fb-sizes 10 --fb-batch 2 --channels 8 --reduction 2)
    EDSR=(--sizes 12 --fb-sizes "" --channels 16 --reduction 8 --no-memory)
    BF16=(--sizes 16 --fb-sizes "" --channels 8 --reduction 2 --impls fast --dtype bfloat16)
    STEP=2,10,16,2; WHOLE=1,16,8,2
    METHODS=(--sizes 10 --fb-sizes "" --channels 8 --reduction 2)
else
    DEV=cuda; MARK="gpu or not slow"; REP=3; T_TEST=150; T_BENCH=200; TESTS=tests/test_ops
    PANET=(--sizes 64,128,256,512 --fb-sizes 48 --fb-batch 16 --channels 64 --reduction 2 --max-ref-gb 20)
    EDSR=(--sizes 48,64,128 --fb-sizes 48 --fb-batch 16 --channels 256 --reduction 8 --max-ref-gb 20)
    BF16=(--sizes 256,512 --fb-sizes 48 --fb-batch 16 --channels 64 --reduction 2 --impls fast --dtype bfloat16)
    STEP=16,48,256,32; WHOLE=1,512,64,80
    METHODS=(--sizes 64,128,256 --fb-sizes 48 --fb-batch 16 --channels 64 --reduction 2)
fi

section() { printf '\n## %s\n\n' "$1" >> "$REPORT"; }
: > "$REPORT"
echo "# Pyramid attention device check ($(date -u +%Y-%m-%dT%H:%M:%SZ))" >> "$REPORT"

section "Environment"
"$PY" - >> "$REPORT" 2>&1 <<'EOF'
import platform, torch
print(f'- python {platform.python_version()}, torch {torch.__version__}, CUDA {torch.version.cuda}')
try:
    import numpy
    print(f'- numpy {numpy.__version__}')
except ImportError:
    print('- numpy: not installed')
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    free, total = torch.cuda.mem_get_info()
    print(f'- {p.name}, {total / 2**30:.0f} GiB ({free / 2**30:.0f} GiB free), capability {p.major}.{p.minor}; '
          f'TF32 matmul {torch.backends.cuda.matmul.allow_tf32}')
else:
    print('- no CUDA device')
EOF

section "$TESTS ($MARK, on $DEV)"
if "$PY" -c 'import pytest' 2>/dev/null; then
    # -P: the shim, not the repository root, provides panet_mm
    timeout $T_TEST "$PY" -P -m pytest -q -p no:cacheprovider -m "$MARK" -rs $TESTS > "$OUT/tests.txt" 2>&1
    rc=$?
    [ $rc = 0 ] || FAILED=1
    echo "exit status $rc (timeout: 124)" >> "$REPORT"
    echo '```' >> "$REPORT"; tail -n 15 "$OUT/tests.txt" >> "$REPORT"; echo '```' >> "$REPORT"
else
    echo "pytest is not importable: install it into build/device_deps (see the header of this script)" >> "$REPORT"
fi

# Each step's timeout is cut to what is left of DEADLINE seconds since the start (default 540: the device tool
# stops a command after 600 s), and a step with under 20 s left is skipped: the report always ends, with the
# most important rows first.
DEADLINE=${DEADLINE:-540}
bench() {
    local name=$1; shift
    section "$name"
    local t0; t0=$(date +%s)
    local left=$(( DEADLINE - (t0 - T0) ))
    if [ $left -lt 20 ]; then
        echo "skipped: $(( t0 - T0 )) s of the check's DEADLINE=$DEADLINE s were spent" >> "$REPORT"
        return
    fi
    timeout $(( left < T_BENCH ? left : T_BENCH )) "$PY" tools/analysis_tools/benchmark_attention.py --device $DEV --repeats $REP "$@" > "$OUT/$(echo "$name" | tr ' /=,' '____').txt" 2>&1
    local rc=$? t1=$(date +%s)
    grep '^|' "$OUT/$(echo "$name" | tr ' /=,' '____').txt" >> "$REPORT" || tail -n 5 "$OUT/$(echo "$name" | tr ' /=,' '____').txt" >> "$REPORT"
    [ $rc = 0 ] || { echo "(exit status $rc; timeout: 124)" >> "$REPORT"; FAILED=1; }
    echo "($(( t1 - t0 )) s)" >> "$REPORT"
}
# issue 15's two GPU targets first: the attention's share of a PA-EDSR x2 training step (< 15%), and the full
# PANet (80 ResBlocks, colour) on a whole 512x512 image (< 1 s; the released block's score map alone would need
# 0.9 TB there, so the kernel only)
bench "PA-EDSR x2 training step, float32" --step $STEP --impls fast,released --json "$OUT/step.json"
bench "PANet whole-image forward, float32" --step $WHOLE --network panet --forward-only --impls fast \
    --json "$OUT/panet_whole.json"
bench "PANet whole-image forward, bfloat16 autocast" --step $WHOLE --network panet --forward-only --impls fast \
    --dtype bfloat16 --json "$OUT/panet_whole_bf16.json"
bench "PANet block, C=64 r=2, float32" "${PANET[@]}" --json "$OUT/panet.json"
bench "PA-EDSR block, C=256 r=8, float32" "${EDSR[@]}" --json "$OUT/paedsr.json"
bench "PANet block, bfloat16 autocast" "${BF16[@]}" --json "$OUT/bf16.json"
# the README's target rows (the same command the CPU rows were measured with); full sizes, so not in --smoke
[ $SMOKE = 1 ] || bench "target rows" --targets --json "$OUT/targets.json"
# the measured table for the 'auto' rule on this device (tests/test_ops/data/attention_methods.json holds the CPU's)
bench "formulations, C=64 r=2, float32" "${METHODS[@]}" --impls "" --methods col,pixel,row,patch --no-memory \
    --method-table "$OUT/methods_float32.json"
bench "formulations, C=64 r=2, bfloat16" "${METHODS[@]}" --impls "" --methods col,pixel,row,patch --no-memory \
    --dtype bfloat16 --method-table "$OUT/methods_bfloat16.json"

echo >> "$REPORT"
echo "total $(( $(date +%s) - T0 )) s" >> "$REPORT"
cat "$REPORT"
# exit status 1 where a step failed or ran out of time (the report says which), so that a run is not read as passed
exit $FAILED
