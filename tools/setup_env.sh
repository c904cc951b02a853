#!/usr/bin/env bash
# Create .venv with the known-good mmagic 1.2.0 stack and install panet_mm into it (editable, with tests).
#
#   bash tools/setup_env.sh            # idempotent: a second run on a ready machine takes seconds
#   PYTHON=python3.11 bash tools/setup_env.sh
#   VENV=/path/to/venv bash tools/setup_env.sh
#
# The pins live in requirements/constraints.txt; why each one exists is in the README.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-python3}"
CONSTRAINTS="$ROOT/requirements/constraints.txt"
STAMP="$VENV/.panet_mm_stack"

step() { printf '\n==> [setup_env] %s\n' "$*"; }
die() { printf '\n[setup_env] ERROR: %s\n' "$*" >&2; exit 1; }

command -v "$PYTHON" >/dev/null 2>&1 || die "'$PYTHON' was not found; install Python 3.9-3.11 or set PYTHON=/path/to/python3."
pyver="$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
case "$pyver" in
  3.9|3.10|3.11) ;;
  *) die "Python $pyver is not supported by the mmagic 1.2.0 stack (torch 2.5.1, mmcv 2.1.0); use 3.9-3.11 via PYTHON=..." ;;
esac

# Fast path: the stamp records the inputs of the last successful install.
want="$(cat "$CONSTRAINTS" "$ROOT/requirements/stack.txt" "$ROOT/setup.py" | sha256sum | cut -d' ' -f1)"
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

step "upgrading pip, pinning setuptools < 70 (mmcv 2.1.0's setup.py imports pkg_resources)"
"$PY" -m pip install --quiet --upgrade 'pip<25' wheel
"${PIP[@]}" setuptools

step "installing torch 2.5.1 + torchvision 0.20.1 and numpy < 2"
"${PIP[@]}" torch torchvision numpy

step "installing mmagic's import-time dependencies"
"${PIP[@]}" -r "$ROOT/requirements/stack.txt"

if "$PY" -c 'import mmcv, mmcv.ops; assert mmcv.__version__ == "2.1.0"' >/dev/null 2>&1; then
  step "mmcv 2.1.0 with compiled ops already present"
else
  command -v gcc >/dev/null 2>&1 || die "gcc is needed to build mmcv 2.1.0's ops; install build-essential."
  step "building mmcv 2.1.0 with ops from source (about 6 minutes on 2 cores the first time; pip caches the wheel)"
  MMCV_WITH_OPS=1 MAX_JOBS="${MAX_JOBS:-2}" "${PIP[@]}" --no-build-isolation mmcv==2.1.0
  "$PY" -c 'import mmcv.ops' || die "mmcv was installed but 'import mmcv.ops' fails; see the build log above."
fi

step "installing mmagic 1.2.0 without its declared requirements (they pull packages that break its import)"
"${PIP[@]}" --no-deps mmagic==1.2.0

step "installing panet_mm (editable) and the test extras"
# --no-deps: pip would otherwise resolve mmagic's declared requirements (mediapipe, av, ...) again.
"${PIP[@]}" pytest ruff scikit-image matplotlib
"${PIP[@]}" --no-deps -e "$ROOT"

step "checking the stack imports"
"$PY" - <<'EOF' || die "the stack does not import; see the traceback above."
import numpy, torch, mmcv, mmcv.ops, mmengine, mmagic, mmagic.models, panet_mm
assert numpy.__version__.startswith('1.'), numpy.__version__
print(f'torch {torch.__version__}, numpy {numpy.__version__}, mmengine {mmengine.__version__}, '
      f'mmcv {mmcv.__version__}, mmagic {mmagic.__version__}, panet_mm {panet_mm.__version__}')
EOF
echo "$want" > "$STAMP"
step "done: activate with 'source $VENV/bin/activate'"
