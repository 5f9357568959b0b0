# Both targets set the stack up first (idempotent: a second run only checks), see tools/install.sh.
PYTHON ?= python3
export PYTHON

.PHONY: install demo test

install:
	bash tools/install.sh

demo: install
	$(PYTHON) tools/demo.py

test: install
	$(PYTHON) -m pytest
