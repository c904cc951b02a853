#!/usr/bin/env bash
# Distributed testing with torchrun (gloo without CUDA).
#   tools/dist_test.sh CONFIG CHECKPOINT GPUS [tools/test.py arguments...]
# Multi-node: NNODES, NODE_RANK, MASTER_ADDR and PORT as for tools/dist_train.sh.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/launch.sh"
need_args 3 $# 'CONFIG CHECKPOINT GPUS [tools/test.py arguments...]'
torchrun_tool "$3" test.py "$1" "$2" --launcher pytorch "${@:4}"
