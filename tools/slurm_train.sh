#!/usr/bin/env bash
# Training on a Slurm cluster: one task per GPU (srun; run it on the cluster's login node).
#   [GPUS=8] [GPUS_PER_NODE=8] [CPUS_PER_TASK=5] [CPU_ONLY=1] [SRUN_ARGS=...] \
#   tools/slurm_train.sh PARTITION JOB_NAME CONFIG WORK_DIR [tools/train.py arguments...]
# GPUS: tasks in all; each node runs min(GPUS, GPUS_PER_NODE) tasks and gets as many GPUs (--gres).
# CPU_ONLY=1: nodes without GPUs (no --gres; the tasks use gloo); GPUS and GPUS_PER_NODE then count processes, e.g.
#   GPUS=4 GPUS_PER_NODE=2 CPU_ONLY=1 tools/slurm_train.sh PARTITION JOB_NAME CONFIG ...
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/launch.sh"
need_args 4 $# 'PARTITION JOB_NAME CONFIG WORK_DIR [tools/train.py arguments...]'
srun_tool "$1" "$2" train.py "$3" --work-dir="$4" --launcher=slurm "${@:5}"
