# Both targets set the stack up first (idempotent: a second run only checks), see tools/install.sh.
PYTHON ?= python3
export PYTHON
# Two pytest-xdist workers (one torch thread each) keep both cores of a 2-core machine busy;
# each test module runs in one worker, in the order tests/conftest.py gives (MODULE_ORDER: the
# trainings first, the short modules last), and the trained models are shared.
# PYTEST_ARGS= runs everything in one process.
PYTEST_ARGS ?= -n 2 --dist loadscope --no-loadscope-reorder

.PHONY: install demo test test-quick test-stack

install:
	bash tools/install.sh

demo: install
	$(PYTHON) tools/demo.py

# Everything but the GPU check (tools/gpu_check.sh), with the 20 slowest tests listed at the end
# (the `stack` module's end-to-end run
# repeats what the rest covers at length: see test-stack).
test: install
	$(PYTHON) -m pytest -m "not stack and not gpu" --durations=20 $(PYTEST_ARGS)

# The edit-test loop: unit and parity tests, no training, exporting or tool subprocesses.
test-quick: install
	$(PYTHON) -m pytest -m "not slow and not gpu" $(PYTEST_ARGS)

# One short run from training to a deployed file (2-process dist_train.sh, tools/test.py, ONNX
# export and parity): with test-quick, what .ci/run checks on the oldest stack.
test-stack: install
	$(PYTHON) -m pytest -m stack $(PYTEST_ARGS)
