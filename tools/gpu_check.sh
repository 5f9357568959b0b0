#!/usr/bin/env bash
# The GPU check: bash tools/gpu_check.sh [pytest options]
# On a machine with a CUDA GPU (2+ for the NCCL training) it runs tests/test_gpu.py, a few
# minutes: float32 parity with TF32 off, AMP fp16/bf16, channels-last vs contiguous speed
# (printed), a 2-process NCCL dist_train.sh with SyncBN, one --amp training, onnxruntime's CUDA
# provider. Without a GPU every test skips, with its reason, and the check exits 0.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
# The rest of the suite hides GPUs (tests/conftest.py); the GPU check is the one that sees them.
export EMO_MM_GPU_CHECK=1
"$PYTHON" -c 'import torch; n = torch.cuda.device_count() if torch.cuda.is_available() else 0
print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, {n} visible GPU(s)" +
      "".join(f"\n  cuda:{i} {torch.cuda.get_device_name(i)}" for i in range(n)))'
exec "$PYTHON" -m pytest -p no:xdist -m gpu tests/test_gpu.py -s -rs "$@"
