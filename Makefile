# Every target bootstraps .venv from pyproject.toml, so a fresh clone needs only python3 and make.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
EXTRAS := dev,workbench,nautilus,signing
STAMP := $(VENV)/.installed-$(EXTRAS)

.PHONY: venv test lint typecheck unit demo bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[$(EXTRAS)]'
	touch $(STAMP)

venv: $(STAMP)

lint: venv
	$(VENV)/bin/ruff check .

typecheck: venv
	$(VENV)/bin/mypy

unit: venv
	$(VENV)/bin/pytest

test: lint typecheck unit

demo: venv
	$(PY) -m examples.demo_session

bench: venv
	$(PY) -m benchmarks.run
	$(PY) -m benchmarks.bench_observer
	$(PY) -m benchmarks.bench_convert

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache demo_trail
