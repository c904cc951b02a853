#!/usr/bin/env bash
# Create a virtual environment with one of the two tested stacks and install panet_mm into it (editable,
# with tests). README "Stacks" says what each stack is for.
#
#   bash tools/setup_env.sh                 # the pinned stack (torch 2.5.1, numpy 1.26) in .venv
#   STACK=modern bash tools/setup_env.sh    # the modern stack (torch 2.14, numpy 2) in .venv-modern
#   PYTHON=python3.11 bash tools/setup_env.sh
#   VENV=/path/to/venv bash tools/setup_env.sh
#
# Idempotent: a second run on a ready machine takes seconds. The pins live in
# requirements/constraints.txt (pinned) and requirements/constraints-modern.txt (modern); why each one
# exists is written there and in the README.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STACK="${STACK:-pinned}"

step() { printf '\n==> [setup_env] %s\n' "$*"; }
die() { printf '\n[setup_env] ERROR: %s\n' "$*" >&2; exit 1; }

case "$STACK" in
  pinned)
    VENV="${VENV:-$ROOT/.venv}"
    CONSTRAINTS="$ROOT/requirements/constraints.txt"
    PYTHONS="3.9|3.10|3.11"
    ;;
  modern)
    VENV="${VENV:-$ROOT/.venv-modern}"
    CONSTRAINTS="$ROOT/requirements/constraints-modern.txt"
    PYTHONS="3.10|3.11"
    ;;
  *) die "STACK='$STACK' is not a stack this script knows; use STACK=pinned (the default) or STACK=modern." ;;
esac
PYTHON="${PYTHON:-python3}"
STAMP="$VENV/.panet_mm_stack"

command -v "$PYTHON" >/dev/null 2>&1 || die "'$PYTHON' was not found; install Python 3.9-3.11 or set PYTHON=/path/to/python3."
pyver="$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
if ! eval "case '$pyver' in $PYTHONS) true ;; *) false ;; esac"; then
  die "Python $pyver is not supported by the $STACK stack (mmcv 2.1.0, mmagic 1.2.0); use ${PYTHONS//|/, } via PYTHON=..."
fi

# Fast path: the stamp records the inputs of the last successful install.
if [ "$STACK" = pinned ]; then
  want="$(cat "$CONSTRAINTS" "$ROOT/requirements/stack.txt" "$ROOT/setup.py" | sha256sum | cut -d' ' -f1)"
else
  want="$(cat "$CONSTRAINTS" "$ROOT/requirements/stack.txt" "$ROOT/setup.py" "$ROOT/tools/setup_env.sh" \
          | sha256sum | cut -d' ' -f1)"
fi
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] \
   && "$VENV/bin/python" -c 'import mmcv.ops, mmagic.models, panet_mm' >/dev/null 2>&1; then
  step "environment at $VENV is up to date (delete $STAMP to force a reinstall)"
  exit 0
fi

if [ ! -x "$VENV/bin/python" ]; then
  step "creating virtual environment $VENV"
  "$PYTHON" -m venv "$VENV" || die "could not create $VENV; on Debian/Ubuntu install python3-venv."
fi
PY="$VENV/bin/python"
PIP=("$PY" -m pip install --progress-bar on -c "$CONSTRAINTS")

if [ "$STACK" = pinned ]; then
  step "upgrading pip, pinning setuptools < 70 (mmcv 2.1.0's setup.py imports pkg_resources)"
  "$PY" -m pip install --quiet --upgrade 'pip<25' wheel
  "${PIP[@]}" setuptools

  step "installing torch 2.5.1 + torchvision 0.20.1 and numpy < 2"
  "${PIP[@]}" torch torchvision numpy
else
  step "upgrading pip, setuptools 80.x (>= 77.0.3 for torch 2.14, < 81: mmcv 2.1.0 and mmengine import pkg_resources)"
  "$PY" -m pip install --quiet --upgrade 'pip<25' wheel
  "${PIP[@]}" setuptools

  # Where a system pip configuration caps torch (this machine's /etc/xdg/pip caps it at 2.14.1 and keeps that
  # wheel on local disk), the pin in constraints-modern.txt sits at the cap, so pip takes the local file.
  step "installing torch + torchvision and numpy 2 as pinned in requirements/constraints-modern.txt"
  "${PIP[@]}" torch torchvision numpy || die "pip could not install the torch/numpy pins of $CONSTRAINTS; \
if it says 'The user requested (constraint) torch<=...', a pip configuration caps torch (see 'pip config debug'): \
run with PIP_CONSTRAINT=/path/to/an/empty/file to replace that cap."
fi

step "installing mmagic's import-time dependencies"
"${PIP[@]}" -r "$ROOT/requirements/stack.txt"

if [ "$STACK" = pinned ]; then
  if "$PY" -c 'import mmcv, mmcv.ops; assert mmcv.__version__ == "2.1.0"' >/dev/null 2>&1; then
    step "mmcv 2.1.0 with compiled ops already present"
  else
    command -v gcc >/dev/null 2>&1 || die "gcc is needed to build mmcv 2.1.0's ops; install build-essential."
    step "building mmcv 2.1.0 with ops from source (about 6 minutes on 2 cores the first time; pip caches the wheel)"
    MMCV_WITH_OPS=1 MAX_JOBS="${MAX_JOBS:-2}" "${PIP[@]}" --no-build-isolation mmcv==2.1.0
    "$PY" -c 'import mmcv.ops' || die "mmcv was installed but 'import mmcv.ops' fails; see the build log above."
  fi
else
  # mmcv 2.1.0's setup.py compiles with -std=c++17, and torch >= 2.14's headers refuse anything below C++20.
  # pip does not cache a wheel built from a local folder, so the patched build is kept here, keyed by what
  # its binary depends on (torch release, Python tag, machine).
  torch_ver="$("$PY" -c 'import torch; print(torch.__version__.split("+")[0])')"
  py_tag="$("$PY" -c 'import sys; print("cp%d%d" % sys.version_info[:2])')"
  WHEELS="${PANET_MM_CACHE:-$HOME/.cache/panet_mm}/wheels/mmcv-2.1.0-torch$torch_ver-$py_tag-$(uname -m)"
  step "mmcv 2.1.0 wheel cache: $WHEELS (set PANET_MM_CACHE to move it)"
  wheel="$(ls "$WHEELS"/mmcv-2.1.0-*.whl 2>/dev/null | head -n 1 || true)"
  if [ -z "$wheel" ]; then
    command -v g++ >/dev/null 2>&1 || die "g++ is needed to build mmcv 2.1.0's ops; install build-essential."
    work="$(mktemp -d)"
    trap 'rm -rf "$work"' EXIT
    step "building mmcv 2.1.0 with ops for C++20 (once per torch release; about 20 minutes on 2 cores)"
    "$PY" -m pip download --quiet --no-deps --no-binary :all: --no-build-isolation -d "$work" mmcv==2.1.0
    tar -xzf "$work"/mmcv-2.1.0.tar.gz -C "$work"
    grep -q -- "-std=c++17" "$work/mmcv-2.1.0/setup.py" \
      || die "mmcv 2.1.0's setup.py no longer says -std=c++17; the C++20 patch in tools/setup_env.sh needs updating."
    sed -i 's/-std=c++17/-std=c++20/g' "$work/mmcv-2.1.0/setup.py"
    MMCV_WITH_OPS=1 MAX_JOBS="${MAX_JOBS:-2}" "$PY" -m pip wheel --no-deps --no-build-isolation \
      -w "$work/dist" "$work/mmcv-2.1.0"
    mkdir -p "$WHEELS"
    built="$(ls "$work"/dist/mmcv-2.1.0-*.whl)"
    # Copy then rename, so an interrupted run never leaves a half-written wheel in the cache.
    cp "$built" "$WHEELS/.partial"
    wheel="$WHEELS/$(basename "$built")"
    mv "$WHEELS/.partial" "$wheel"
  else
    step "using the cached mmcv 2.1.0 wheel $wheel"
  fi
  "${PIP[@]}" --no-deps --force-reinstall "$wheel"
  "$PY" -c 'import mmcv.ops' || die "mmcv was installed from $wheel but 'import mmcv.ops' fails; delete that \
wheel and run this script again to rebuild it."
fi

step "installing mmagic 1.2.0 without its declared requirements (they pull packages that break its import)"
"${PIP[@]}" --no-deps mmagic==1.2.0

step "installing panet_mm (editable) and the test extras"
# --no-deps: pip would otherwise resolve mmagic's declared requirements (mediapipe, av, ...) again.
# onnx / onnxruntime: the ONNX export test runs the exported graph (setup.py extra "onnx").
"${PIP[@]}" pytest ruff scikit-image matplotlib onnx onnxruntime
"${PIP[@]}" --no-deps -e "$ROOT"
if [ "$STACK" = modern ]; then
  # onnxscript: torch 2.14's default ONNX exporter (dynamo=True), the one that keeps an ONNX file's height and
  # width dynamic (README "Attention speed and memory"); torch 2.5's cannot export the pyramid, so the pinned
  # stack goes without it.
  "${PIP[@]}" onnxscript
fi

if [ "$STACK" = modern ]; then
  # numpy 2 removed np.bool8, which mmagic 1.2.0 uses; a start-up hook adds the alias whenever numpy is
  # imported, so mmagic's own scripts (tools/train.py, its demos) work without importing panet_mm first.
  step "installing the numpy 2 start-up hook (panet_mm/utils/compat.py)"
  "$PY" "$ROOT/panet_mm/utils/compat.py" --install-startup-hook
fi

step "checking the stack imports"
STACK="$STACK" "$PY" - <<'EOF' || die "the stack does not import; see the traceback above."
import os
import warnings
warnings.simplefilter('ignore', FutureWarning)  # transformers / diffusers on this torch: not the user's to act on
import numpy, torch, mmcv, mmcv.ops, mmengine, mmagic, mmagic.models, panet_mm
assert numpy.__version__.startswith('1.' if os.environ['STACK'] == 'pinned' else '2.'), numpy.__version__
print(f'torch {torch.__version__}, numpy {numpy.__version__}, mmengine {mmengine.__version__}, '
      f'mmcv {mmcv.__version__}, mmagic {mmagic.__version__}, panet_mm {panet_mm.__version__}')
EOF
echo "$want" > "$STAMP"
step "done: activate with 'source $VENV/bin/activate'"
