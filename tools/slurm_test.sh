#!/usr/bin/env bash
# Test on a Slurm cluster, one task per GPU (MMDetection's / MMSegmentation's interface):
#   [GPUS=8] [GPUS_PER_NODE=8] [CPUS_PER_TASK=5] [GRES=gpu:8] [SRUN_ARGS=...] \
#     tools/slurm_test.sh PARTITION JOB_NAME CONFIG CHECKPOINT [tools/test.py options]
# On a partition without GPUs set GRES= (empty): the tasks run on CPU over gloo.
# The settings are described in tools/slurm_common.sh.
set -euo pipefail
if [ $# -lt 4 ]; then
  echo "usage: $0 PARTITION JOB_NAME CONFIG CHECKPOINT [tools/test.py options]" >&2
  exit 2
fi
source "$(dirname "$0")/slurm_common.sh"
PARTITION=$1
JOB_NAME=$2
CONFIG=$3
CHECKPOINT=$4
check_settings "$PARTITION"
TOOL="$(dirname "$0")/test.py"
# Check the config, data and checkpoint once, here, before the job's tasks start.
"$PYTHON" "$TOOL" "$CONFIG" "$CHECKPOINT" --preflight "${@:5}"
run_srun "$PARTITION" "$JOB_NAME" \
  "$PYTHON" -u "$TOOL" "$CONFIG" "$CHECKPOINT" --launcher=slurm "${@:5}"
