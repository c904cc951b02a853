#!/usr/bin/env bash
# Training on a Slurm cluster: one task per GPU.
#   [GPUS=8] [GPUS_PER_NODE=8] [CPUS_PER_TASK=5] [SRUN_ARGS=...] \
#   tools/slurm_train.sh PARTITION JOB_NAME CONFIG WORK_DIR [tools/train.py arguments...]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/launch.sh"
need_args 4 $# 'PARTITION JOB_NAME CONFIG WORK_DIR [tools/train.py arguments...]'
srun_tool "$1" "$2" train.py "$3" --work-dir="$4" --launcher=slurm "${@:5}"
