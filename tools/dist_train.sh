#!/usr/bin/env bash
# Train with NPROC processes per machine: tools/dist_train.sh CONFIG NPROC [tools/train.py options]
# Several machines: set NNODES, NODE_RANK, MASTER_ADDR and PORT on each. Works on GPUs (NCCL) and
# on CPU-only machines (gloo), through PyTorch's launcher and mmengine's DDP.
set -euo pipefail
if [ $# -lt 2 ]; then
  echo "usage: $0 CONFIG NPROC [tools/train.py options]" >&2
  exit 2
fi
CONFIG=$1
NPROC=$2
if ! [[ "$NPROC" =~ ^[1-9][0-9]*$ ]]; then
  echo "error: NPROC (the number of training processes per machine) must be a whole number >= 1, got '$NPROC'; e.g. $0 $CONFIG 8" >&2
  exit 2
fi
PYTHON=${PYTHON:-python3}
TOOL="$(dirname "$0")/train.py"
# Check the config, data, checkpoints and devices (at most one process per GPU) once, in one
# process: a mistake is then said once, before NPROC processes start.
LOCAL_WORLD_SIZE="$NPROC" "$PYTHON" "$TOOL" "$CONFIG" --preflight "${@:3}"
exec "$PYTHON" -m torch.distributed.run \
  --nnodes="${NNODES:-1}" \
  --node_rank="${NODE_RANK:-0}" \
  --master_addr="${MASTER_ADDR:-127.0.0.1}" \
  --master_port="${PORT:-29500}" \
  --nproc_per_node="$NPROC" \
  "$TOOL" "$CONFIG" --launcher pytorch "${@:3}"
