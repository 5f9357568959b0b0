#!/usr/bin/env bash
# Idempotent set-up of the emo-mm stack on a CPU-only (or CUDA) machine.
#
# Keeps an installed torch, builds mmcv 2.1.0 with its compiled ops from source unless a
# prebuilt wheel is offered (EMO_MM_WHEELS=DIR, or pip's own find-links), then installs mmdet,
# mmseg and emo-mm itself (editable). Never installs torchvision, timm or mmpretrain.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
pip_install() { "$PYTHON" -m pip install --no-input "$@"; }
have() { "$PYTHON" -c "$1" >/dev/null 2>&1; }

if ! have 'import torch'; then
  # An exact pin: a bare `torch` would resolve to the newest CUDA build (several GB).
  pip_install "torch==${EMO_MM_TORCH_VERSION:-2.13.0}"
fi

pip_install "setuptools<81" wheel ninja "mmengine>=0.10.7,<0.11"

if ! have 'import mmcv, mmcv.ops; from mmcv.ops import nms; assert mmcv.__version__ == "2.1.0"'; then
  # --no-build-isolation: mmcv's ops compile against the torch installed above. A directory
  # with a prebuilt wheel (EMO_MM_WHEELS, e.g. ../shared/wheels in CI) saves the compile; it is
  # offered for this install only, so pip's own find-links stay in force everywhere else.
  MMCV_WITH_OPS=1 pip_install --no-build-isolation \
    ${EMO_MM_WHEELS:+--find-links "$EMO_MM_WHEELS"} "mmcv==2.1.0"
fi

# mmseg imports ftfy and regex without declaring them.
pip_install "mmdet==3.3.0" "mmsegmentation==1.2.2" ftfy regex pytest matplotlib

pip_install --no-build-isolation -e .

"$PYTHON" - <<'PY'
import torch, mmcv, mmengine, mmdet, mmseg, emo_mm
from mmcv.ops import nms  # fails when mmcv was built without its compiled ops
print(f'emo-mm stack ready: torch {torch.__version__}, mmengine {mmengine.__version__}, '
      f'mmcv {mmcv.__version__}, mmdet {mmdet.__version__}, mmseg {mmseg.__version__}, '
      f'emo_mm {emo_mm.__version__}')
PY
