#!/usr/bin/env bash
# What dist_train.sh, dist_test.sh, slurm_train.sh and slurm_test.sh share (they source this file): the
# argument count check, the checkout on PYTHONPATH and the torchrun / srun command lines.
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# The interpreter: $PYTHON, else `python` where it imports torch (an activated environment), else the
# checkout's .venv (tools/setup_env.sh), which the README's commands call by path without activating it.
if [ -z "${PYTHON:-}" ]; then
  PYTHON=python
  if ! python -c 'import torch' >/dev/null 2>&1 && [ -x "$HERE/../.venv/bin/python" ]; then
    PYTHON="$HERE/../.venv/bin/python"
  fi
fi

# need_torch: exit 2 with the fix unless $PYTHON imports torch (checked here for local runs only: under
# Slurm the compute nodes' environment is what counts).
need_torch() {
  if ! "$PYTHON" -c 'import torch' >/dev/null 2>&1; then
    echo "error: torch is not importable by '$PYTHON'; activate the environment (source .venv/bin/activate) or" \
         "set PYTHON=/path/to/its/python" >&2
    exit 2
  fi
}

# need_args COUNT GIVEN USAGE: exit 2 with the usage line unless GIVEN >= COUNT.
need_args() {
  if [ "$2" -lt "$1" ]; then
    echo "usage: $0 $3" >&2
    exit 2
  fi
}

# need_free_port PORT: on the master node, exit 2 with the fix when PORT is taken (another distributed run on
# this machine): torchrun stopped with a traceback ending in "EADDRINUSE".
need_free_port() {
  [ "${NODE_RANK:-0}" = 0 ] || return 0
  if ! "$PYTHON" -c 'import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as torchrun: a closed run (TIME_WAIT) does not count
try:
    s.bind(("", int(sys.argv[1])))
except OSError:
    sys.exit(1)' "$1" >/dev/null 2>&1; then
    echo "error: port $1 is in use (another distributed run on this machine?); pick a free one, e.g." \
         "PORT=$(( $1 + 1 )) $0 ..." >&2
    exit 2
  fi
}

# torchrun_tool GPUS TOOL [TOOL ARGUMENTS...]: one process per GPU (per CPU worker without CUDA);
# multi-node with NNODES, NODE_RANK, MASTER_ADDR and PORT.
torchrun_tool() {
  local gpus=$1 tool=$2
  shift 2
  need_torch
  need_free_port "${PORT:-29500}"
  PYTHONPATH="$HERE/..${PYTHONPATH:+:$PYTHONPATH}" \
  "$PYTHON" -m torch.distributed.run \
      --nnodes="${NNODES:-1}" \
      --node_rank="${NODE_RANK:-0}" \
      --master_addr="${MASTER_ADDR:-127.0.0.1}" \
      --master_port="${PORT:-29500}" \
      --nproc_per_node="$gpus" \
      "$HERE/$tool" "$@"
}

# srun_tool PARTITION JOB_NAME TOOL [TOOL ARGUMENTS...]: one Slurm task per GPU, with GPUS (8),
# GPUS_PER_NODE (8), CPUS_PER_TASK (5) and SRUN_ARGS.
srun_tool() {
  local partition=$1 job_name=$2 tool=$3 per_node=${GPUS_PER_NODE:-8}
  shift 3
  export MASTER_PORT=${MASTER_PORT:-$((12000 + RANDOM % 20000))}
  # shellcheck disable=SC2086
  PYTHONPATH="$HERE/..${PYTHONPATH:+:$PYTHONPATH}" \
  srun -p "$partition" \
      --job-name="$job_name" \
      --gres=gpu:"$per_node" \
      --ntasks="${GPUS:-8}" \
      --ntasks-per-node="$per_node" \
      --cpus-per-task="${CPUS_PER_TASK:-5}" \
      --kill-on-bad-exit=1 \
      ${SRUN_ARGS:-} \
      "$PYTHON" -u "$HERE/$tool" "$@"
}
