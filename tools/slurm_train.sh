#!/usr/bin/env bash
# Train on a Slurm cluster, one task per GPU (MMDetection's / MMSegmentation's interface):
#   [GPUS=8] [GPUS_PER_NODE=8] [CPUS_PER_TASK=5] [GRES=gpu:8] [SRUN_ARGS=...] \
#     tools/slurm_train.sh PARTITION JOB_NAME CONFIG WORK_DIR [tools/train.py options]
# e.g. two nodes of 8 GPUs: GPUS=16 tools/slurm_train.sh gpu emo configs/ssdlite/emo_5m.py work_dirs/x
# On a partition without GPUs set GRES= (empty): the tasks train on CPU over gloo.
# The settings are described in tools/slurm_common.sh.
set -euo pipefail
if [ $# -lt 4 ]; then
  echo "usage: $0 PARTITION JOB_NAME CONFIG WORK_DIR [tools/train.py options]" >&2
  exit 2
fi
source "$(dirname "$0")/slurm_common.sh"
PARTITION=$1
JOB_NAME=$2
CONFIG=$3
WORK_DIR=$4
check_settings "$PARTITION"
TOOL="$(dirname "$0")/train.py"
# Check the config, data and checkpoints once, here, before the job's tasks start: a mistake is
# then said once, without waiting for an allocation.
"$PYTHON" "$TOOL" "$CONFIG" --work-dir="$WORK_DIR" --preflight "${@:5}"
run_srun "$PARTITION" "$JOB_NAME" \
  "$PYTHON" -u "$TOOL" "$CONFIG" --work-dir="$WORK_DIR" --launcher=slurm "${@:5}"
