#!/usr/bin/env bash
# Idempotent set-up of the emo-mm stack on a CPU-only or CUDA machine.
#
# Keeps an installed torch (else installs torch==$EMO_MM_TORCH_VERSION, default 2.13.0; the
# tested floor is 2.1.2), builds mmcv 2.1.0 with its compiled ops from source unless a
# prebuilt wheel is installed or offered (EMO_MM_WHEELS=DIR, or pip's own find-links), then
# installs mmdet, mmseg, the test and deploy extras, and emo-mm itself (editable). Never
# installs torchvision, timm or mmpretrain. When everything is in place already, one check (a
# few seconds) and done.
#
# torch < 2.3 was built against numpy 1.x: numpy stays < 2 then. With a CUDA torch and a
# visible GPU (or FORCE_CUDA=1), mmcv is built with its CUDA ops (needs nvcc; a CPU-only
# wheel from EMO_MM_WHEELS is not used), and one CUDA op is checked when a GPU is present.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)

PYTHON=${PYTHON:-python3}
pip_install() { "$PYTHON" -m pip install --no-input "$@"; }
have() { "$PYTHON" -c "$1" >/dev/null 2>&1; }

# Everything this script installs, checked in one Python start, outside the checkout (so that
# `import emo_mm` proves the editable install of THIS checkout, not the current directory).
STACK_CHECK='
import importlib.metadata as md, os, sys
v = md.version
assert v("mmengine").startswith("0.10.") and v("mmcv") == "2.1.0"
assert v("mmdet") == "3.3.0" and v("mmsegmentation") == "1.2.2"
assert int(v("setuptools").split(".")[0]) < 81  # mmengine imports pkg_resources
for name in ("wheel", "ninja", "ftfy", "regex", "pytest", "pytest-xdist", "matplotlib", "onnx",
             "onnxruntime", "openvino"):
    v(name)
import torch, mmcv.ops
from mmcv.ops import nms  # fails when mmcv was built without its compiled ops
import emo_mm
assert os.path.dirname(os.path.dirname(os.path.abspath(emo_mm.__file__))) == sys.argv[1]
'
stack_ready() { (cd / && "$PYTHON" -c "$STACK_CHECK" "$REPO" >/dev/null 2>&1); }
# One CUDA op of mmcv, on a machine with a GPU (mmcv built without CUDA ops fails it).
CUDA_OP_CHECK='
import torch
from mmcv.ops import nms
boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 10., 10.]], device="cuda")
kept = nms(boxes, torch.tensor([0.9, 0.8], device="cuda"), 0.5)[1]
assert kept.tolist() == [0], kept
'
torch_query() { "$PYTHON" -c "import torch; print($1)"; }

if ! stack_ready; then
  if ! have 'import torch'; then
    # An exact pin: a bare `torch` would resolve to the newest CUDA build (several GB).
    pip_install "torch==${EMO_MM_TORCH_VERSION:-2.13.0}"
  fi
  # torch < 2.3 was built against numpy 1.x; every install below keeps numpy < 2 then.
  if [ "$(torch_query "tuple(map(int, torch.__version__.split('.')[:2])) < (2, 3)")" = True ]; then
    constraints=$(mktemp)
    trap 'rm -f "$constraints"' EXIT
    echo 'numpy<2' > "$constraints"
    export PIP_CONSTRAINT="$constraints"
    pip_install "numpy<2"
  fi
  # mmcv's build compiles its CUDA ops when torch sees a GPU or FORCE_CUDA=1 (with a CUDA
  # torch and nvcc); a CPU-only prebuilt wheel is then not offered.
  with_cuda_ops=$(torch_query "torch.version.cuda is not None and (torch.cuda.is_available() or '${FORCE_CUDA:-0}' == '1')")
  if [ "$with_cuda_ops" = True ]; then
    export FORCE_CUDA=1
    unset EMO_MM_WHEELS
    if ! command -v nvcc >/dev/null && [ ! -x "${CUDA_HOME:-/usr/local/cuda}/bin/nvcc" ]; then
      echo "error: building mmcv 2.1.0 with CUDA ops needs the CUDA compiler (nvcc), not found;" \
        "install the CUDA toolkit matching torch $(torch_query 'torch.version.cuda') and set" \
        "CUDA_HOME, or install OpenMMLab's prebuilt mmcv 2.1.0 for your torch and CUDA first" \
        "(docs/install.md)" >&2
      exit 1
    fi
  fi

  pip_install "setuptools<81" wheel ninja "mmengine>=0.10.7,<0.11"

  if ! have 'import mmcv, mmcv.ops; from mmcv.ops import nms; assert mmcv.__version__ == "2.1.0"'; then
    # --no-build-isolation: mmcv's ops compile against the torch installed above. A directory
    # with a prebuilt wheel (EMO_MM_WHEELS, e.g. ../shared/wheels in CI) saves the compile; it
    # is offered for this install only, so pip's own find-links stay in force everywhere else.
    MMCV_WITH_OPS=1 pip_install --no-build-isolation \
      ${EMO_MM_WHEELS:+--find-links "$EMO_MM_WHEELS"} "mmcv==2.1.0"
  fi

  # mmseg imports ftfy and regex without declaring them; pytest, pytest-xdist and matplotlib
  # run the tests; onnx and onnxruntime are the [deploy] extra (export, onnxruntime inference).
  pip_install "mmdet==3.3.0" "mmsegmentation==1.2.2" ftfy regex pytest pytest-xdist \
    matplotlib onnx onnxruntime "openvino>=2026.4"

  pip_install --no-build-isolation -e .
  stack_ready || { echo "error: the emo-mm stack is still incomplete after installing; run" \
    "(cd / && $PYTHON -c '\$STACK_CHECK' $REPO) from tools/install.sh to see what fails" >&2; exit 1; }
fi

if [ "$(torch_query 'torch.cuda.is_available()')" = True ]; then
  (cd / && "$PYTHON" -c "$CUDA_OP_CHECK") || { echo "error: mmcv's ops do not run on the GPU:" \
    "mmcv was built without CUDA ops; reinstall it with FORCE_CUDA=1 (pip uninstall -y mmcv;" \
    "bash tools/install.sh) or use OpenMMLab's prebuilt mmcv for your torch and CUDA" >&2; exit 1; }
  ops=CPU+CUDA
else
  ops=CPU
fi

(cd / && OPS=$ops "$PYTHON" - <<'PY'
import os, torch, mmcv, mmengine, mmdet, mmseg, numpy, onnxruntime, emo_mm
print(f'emo-mm stack ready: torch {torch.__version__}, numpy {numpy.__version__}, '
      f'mmengine {mmengine.__version__}, mmcv {mmcv.__version__} ({os.environ["OPS"]} ops), '
      f'mmdet {mmdet.__version__}, mmseg {mmseg.__version__}, '
      f'onnxruntime {onnxruntime.__version__}, emo_mm {emo_mm.__version__}')
PY
)
