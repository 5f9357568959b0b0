#!/usr/bin/env bash
# Test with NPROC processes per machine:
#   tools/dist_test.sh CONFIG CHECKPOINT NPROC [tools/test.py options]
# Several machines: set NNODES, NODE_RANK, MASTER_ADDR and PORT on each. Works on GPUs (NCCL) and
# on CPU-only machines (gloo), through PyTorch's launcher and mmengine's DDP.
set -euo pipefail
if [ $# -lt 3 ]; then
  echo "usage: $0 CONFIG CHECKPOINT NPROC [tools/test.py options]" >&2
  exit 2
fi
CONFIG=$1
CHECKPOINT=$2
NPROC=$3
if ! [[ "$NPROC" =~ ^[1-9][0-9]*$ ]]; then
  echo "error: NPROC (the number of test processes per machine) must be a whole number >= 1, got '$NPROC'; e.g. $0 $CONFIG $CHECKPOINT 8" >&2
  exit 2
fi
PYTHON=${PYTHON:-python3}
TOOL="$(dirname "$0")/test.py"
# Check the config, data and checkpoint once, in one process, before NPROC processes start.
LOCAL_WORLD_SIZE="$NPROC" "$PYTHON" "$TOOL" "$CONFIG" "$CHECKPOINT" --preflight "${@:4}"
exec "$PYTHON" -m torch.distributed.run \
  --nnodes="${NNODES:-1}" \
  --node_rank="${NODE_RANK:-0}" \
  --master_addr="${MASTER_ADDR:-127.0.0.1}" \
  --master_port="${PORT:-29500}" \
  --nproc_per_node="$NPROC" \
  "$TOOL" "$CONFIG" "$CHECKPOINT" --launcher pytorch "${@:4}"
