#!/usr/bin/env bash
# What dist_train.sh, dist_test.sh, slurm_train.sh and slurm_test.sh share (they source this file): the
# argument count check, the checkout on PYTHONPATH and the torchrun / srun command lines.
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# The interpreter: $PYTHON, else `python` where it imports torch (an activated environment), else the
# checkout's .venv (tools/setup_env.sh), else its .venv-modern (STACK=modern), which the README's commands call by
# path without activating them.
if [ -z "${PYTHON:-}" ]; then
  PYTHON=python
  if ! python -c 'import torch' >/dev/null 2>&1; then
    for venv in .venv .venv-modern; do
      if [ -x "$HERE/../$venv/bin/python" ]; then
        PYTHON="$HERE/../$venv/bin/python"
        break
      fi
    done
  fi
fi

# need_torch: exit 2 with the fix unless $PYTHON imports torch (checked here for local runs only: under
# Slurm the compute nodes' environment is what counts).
need_torch() {
  if ! "$PYTHON" -c 'import torch' >/dev/null 2>&1; then
    echo "error: torch is not importable by '$PYTHON'; activate the environment (source .venv/bin/activate, or" \
         ".venv-modern/bin/activate) or set PYTHON=/path/to/its/python" >&2
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
# multi-node with NNODES, NODE_RANK, MASTER_ADDR and PORT. torchrun's stderr goes through _quiet_torchrun; the
# exit status is torchrun's, or 130 / 143 when Ctrl-C / SIGTERM stopped it (torchrun itself exits 1 then).
# Stop a run with a signal to its process group (Ctrl-C, `timeout`, a scheduler, kill -- -PGID): this script waits
# for torchrun's last line, so a signal to the script's process alone takes effect when torchrun ends.
torchrun_tool() {
  local gpus=$1 tool=$2
  shift 2
  need_torch
  need_free_port "${PORT:-29500}"
  trap : INT TERM   # wait for torchrun (which stops the tools) instead of ending before it
  { PYTHONPATH="$HERE/..${PYTHONPATH:+:$PYTHONPATH}" \
    "$PYTHON" -m torch.distributed.run \
        --nnodes="${NNODES:-1}" \
        --node_rank="${NODE_RANK:-0}" \
        --master_addr="${MASTER_ADDR:-127.0.0.1}" \
        --master_port="${PORT:-29500}" \
        --nproc_per_node="$gpus" \
        "$HERE/$tool" "$@" 2>&1 1>&3 3>&- | _quiet_torchrun >&2 3>&-; } 3>&1
}

# _quiet_torchrun: torchrun's stderr without what torchrun adds around the tools' own lines (each tool says what
# stopped it in one line): its traceback when a process failed (ChildFailedError) or at Ctrl-C / SIGTERM
# (SignalException), the "==== train.py FAILED" banner and its "Sending process N closing signal", "Received N
# death signal" and "failed (exitcode: N)" log lines. Every other line, a tool's own traceback and any other
# torchrun error (it is then the only message) included, passes unchanged as it comes. A process killed by a
# signal (it had no chance to say anything) gets one line from the banner. Exit status: 128 + the signal that
# stopped torchrun, else 0 (with pipefail the pipeline then has torchrun's).
_quiet_torchrun() {
  trap '' INT TERM   # (a subshell) read on until torchrun's last line: Ctrl-C must not end the filter first
  local line sig=0 banner=0 after_failure=0 held= root=0 rank= code= why=
  local -a block=()
  local log='^[IWEF][0-9]{4} [0-9:.]+ +[0-9]+ [^ ]*torch/distributed/elastic/[^ ]*\] '
  local own='^torch\.distributed\.elastic\.[a-z_.]+\.(ChildFailedError|SignalException)(:|$)'
  while IFS= read -r line || [ -n "$line" ]; do
    if [ "${#block[@]}" -gt 0 ]; then                  # in a traceback: its frames, up to the exception's line
      block+=("$line")
      case $line in ' '*) continue ;; esac
      if [[ $line =~ $own ]] && [[ "${block[*]}" == *'torch/distributed/run.py"'* ]]; then
        [[ $line =~ got\ signal:\ ([0-9]+) ]] && sig=$((128 + BASH_REMATCH[1]))
        [[ $line == *ChildFailedError* ]] && after_failure=1
      else
        printf '%s\n' "${block[@]}"
      fi
      block=()
      continue
    fi
    if [ -n "$held" ]; then                            # a line of '=': the banner when "... FAILED" follows
      if [[ $line == *' FAILED' ]]; then
        banner=1 root=0 rank= code= why=
        held=
        continue
      fi
      printf '%s\n' "$held"
      held=
    fi
    if [ "$banner" = 1 ]; then
      case $line in
        'Root Cause'*) root=1 ;;
        '  rank      : '*) [ "$root" = 1 ] && rank=${line#*: } && rank=${rank%% *} ;;
        '  exitcode  : '*) [ "$root" = 1 ] && code=${line#*: } && code=${code%% *} ;;
        '  traceback : '*) [ "$root" = 1 ] && why=${line#*: } ;;
      esac
      if [[ $line =~ ^={20,}$ ]]; then
        banner=0
        if [[ $code == -* ]]; then
          local hint=
          [ "$code" = -9 ] && hint='; SIGKILL usually means that memory ran out: run fewer processes or lower the batch size'
          why=${why% received by PID*}
          echo "error (rank $rank): the process was killed by ${why,} before it could say why; torchrun stopped the" \
               "others$hint"
        fi
      fi
      continue
    fi
    if [ "$after_failure" = 1 ]; then
      after_failure=0
      [ -z "$line" ] && continue
    fi
    if [[ $line == 'Traceback (most recent call last):' ]]; then
      block=("$line")
    elif [[ $line =~ ^={20,}$ ]]; then
      held=$line
    elif ! [[ $line =~ $log && $line =~ \]\ (Sending\ process\ [0-9]+\ closing\ signal|Received\ [0-9]+\ death\ signal|failed\ \(exitcode:) ]]; then
      printf '%s\n' "$line"
    fi
  done
  [ "${#block[@]}" -eq 0 ] || printf '%s\n' "${block[@]}"
  [ -z "$held" ] || printf '%s\n' "$held"
  return "$sig"
}

# need_count NAME VALUE: exit 2 with the fix unless VALUE is a whole number of at least 1.
need_count() {
  if ! [[ $2 =~ ^[0-9]+$ ]] || [ "$2" -lt 1 ]; then
    echo "error: $1=$2 is not a number of processes; set $1 to a whole number of at least 1" >&2
    exit 2
  fi
}

# srun_tool PARTITION JOB_NAME TOOL [TOOL ARGUMENTS...]: one Slurm task per GPU, with GPUS (8 tasks in all),
# GPUS_PER_NODE (8; a node runs min(GPUS, GPUS_PER_NODE) tasks and gets as many GPUs), CPUS_PER_TASK (5) and
# SRUN_ARGS; CPU_ONLY=1 asks for no GPUs (no --gres: CPU-only nodes; GPUS and GPUS_PER_NODE then count processes).
srun_tool() {
  local partition=$1 job_name=$2 tool=$3 gpus=${GPUS:-8} per_node=${GPUS_PER_NODE:-8} cpu_only=${CPU_ONLY:-0}
  shift 3
  need_count GPUS "$gpus"
  need_count GPUS_PER_NODE "$per_node"
  if [ "$cpu_only" != 0 ] && [ "$cpu_only" != 1 ]; then
    echo "error: CPU_ONLY=$cpu_only is neither 0 nor 1; set CPU_ONLY=1 for nodes without GPUs (no --gres)," \
         "or leave it unset" >&2
    exit 2
  fi
  if ! command -v srun >/dev/null 2>&1; then
    echo "error: srun is not on PATH: $0 runs on a Slurm cluster (its login node); elsewhere use" \
         "tools/dist_${tool%.py}.sh (torchrun) instead" >&2
    exit 2
  fi
  [ "$per_node" -le "$gpus" ] || per_node=$gpus
  local gres=(--gres=gpu:"$per_node")
  [ "$cpu_only" = 0 ] || gres=()
  export MASTER_PORT=${MASTER_PORT:-$((12000 + RANDOM % 20000))}
  # shellcheck disable=SC2086
  PYTHONPATH="$HERE/..${PYTHONPATH:+:$PYTHONPATH}" \
  srun -p "$partition" \
      --job-name="$job_name" \
      "${gres[@]}" \
      --ntasks="$gpus" \
      --ntasks-per-node="$per_node" \
      --cpus-per-task="${CPUS_PER_TASK:-5}" \
      --kill-on-bad-exit=1 \
      ${SRUN_ARGS:-} \
      "$PYTHON" -u "$HERE/$tool" "$@"
}
