#!/usr/bin/env bash
# Distributed training with torchrun: one process per GPU (or per CPU worker on a machine without CUDA,
# where panet_mm switches to the gloo backend).
#   tools/dist_train.sh CONFIG GPUS [tools/train.py arguments...]
# Multi-node: run on every node with NNODES, NODE_RANK, MASTER_ADDR and PORT set, e.g.
#   NNODES=2 NODE_RANK=0 MASTER_ADDR=10.0.0.1 PORT=29500 tools/dist_train.sh CONFIG 8   # on node 0
#   NNODES=2 NODE_RANK=1 MASTER_ADDR=10.0.0.1 PORT=29500 tools/dist_train.sh CONFIG 8   # on node 1
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/launch.sh"
need_args 2 $# 'CONFIG GPUS [tools/train.py arguments...]'
torchrun_tool "$2" train.py "$1" --launcher pytorch "${@:3}"
