# Both targets set the stack up first (idempotent: a second run only checks), see tools/install.sh.
PYTHON ?= python3
export PYTHON
# Two pytest-xdist workers (one torch thread each) keep both cores of a 2-core machine busy;
# each test module runs in one worker, in the order tests/conftest.py gives (MODULE_ORDER: the
# trainings first, the short modules last), and the trained models are shared.
# PYTEST_ARGS= runs everything in one process.
PYTEST_ARGS ?= -n 2 --dist loadscope --no-loadscope-reorder

.PHONY: install demo test test-quick

install:
	bash tools/install.sh

demo: install
	$(PYTHON) tools/demo.py

# Everything, with the 20 slowest tests listed at the end.
test: install
	$(PYTHON) -m pytest --durations=20 $(PYTEST_ARGS)

# The edit-test loop: unit and parity tests, no training, exporting or tool subprocesses.
test-quick: install
	$(PYTHON) -m pytest -m "not slow" $(PYTEST_ARGS)
