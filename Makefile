# Every target bootstraps .venv from pyproject.toml, so a fresh clone needs only python3 and make.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
EXTRAS := dev,workbench,nautilus,signing,spark
STAMP := $(VENV)/.installed-$(EXTRAS)

# The notebook browser test needs a Chromium; Debian's package, installed once if missing.
CHROMIUM := /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: venv test lint typecheck unit demo bench lab clean

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

$(CHROMIUM):
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends chromium

unit: venv $(CHROMIUM)
	$(VENV)/bin/pytest

test: lint typecheck unit

demo: venv
	$(PY) -m examples.demo_session

lab: venv
	$(VENV)/bin/jupyter lab --notebook-dir=notebooks $$( [ "$$(id -u)" = 0 ] && echo --allow-root )

bench: venv
	$(PY) -m benchmarks.run
	$(PY) -m benchmarks.bench_observer
	$(PY) -m benchmarks.bench_convert
	$(PY) -m benchmarks.bench_audited
	$(PY) -m benchmarks.bench_pages
	$(PY) -m benchmarks.bench_spark
	$(PY) -m benchmarks.bench_workbench
	$(PY) -m benchmarks.bench_bulk --stock
	$(PY) -m benchmarks.bench_demo
	$(PY) -m benchmarks.readme

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache demo_trail reports
