# Every target bootstraps .venv from pyproject.toml, so a fresh clone needs only python3 and make.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
EXTRAS := dev,workbench,nautilus,signing,spark
STAMP := $(VENV)/.installed-$(EXTRAS)

# The notebook browser test needs a Chromium; Debian's package, installed once if missing.
CHROMIUM := /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# The newest NautilusTrader needs Python 3.12+: a second venv runs the NautilusTrader tests on it
# (make test runs them on the default Python, with the newest release that Python gets).
PYTHON_LATEST ?= $(firstword $(wildcard $(or $(PYENV_ROOT),$(HOME)/.pyenv)/versions/3.12*/bin/python) \
	$(shell command -v python3.12))
VENV_LATEST := .venv312
STAMP_LATEST := $(VENV_LATEST)/.installed
NAUTILUS_TESTS := tests/integration/test_observer.py tests/integration/test_observer_lifecycles.py \
	tests/integration/test_observer_sessions.py tests/integration/test_reconciliation.py \
	tests/integration/test_demo_session.py tests/performance/test_bench_observer_smoke.py \
	tests/unit/audit/test_recording.py

.PHONY: venv test lint typecheck unit demo bench lab clean test-nautilus-latest

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

$(STAMP_LATEST): pyproject.toml
	@test -n "$(PYTHON_LATEST)" && test -x "$(PYTHON_LATEST)" || { echo "test-nautilus-latest: no Python 3.12 found \
	(looked in pyenv's versions/3.12* and for python3.12 on PATH); install one or set PYTHON_LATEST=/path/to/python3.12" >&2; exit 2; }
	test -x $(VENV_LATEST)/bin/python || "$(PYTHON_LATEST)" -m venv $(VENV_LATEST)
	$(VENV_LATEST)/bin/python -m pip install --quiet --upgrade pip
	$(VENV_LATEST)/bin/python -m pip install --quiet -e '.[dev,workbench,nautilus]'
	touch $(STAMP_LATEST)

test-nautilus-latest: $(STAMP_LATEST)
	$(VENV_LATEST)/bin/python -c "import nautilus_trader, sys; print('NautilusTrader', nautilus_trader.__version__, 'on Python', sys.version.split()[0])"
	$(VENV_LATEST)/bin/pytest -q $(NAUTILUS_TESTS)

demo: venv
	$(PY) -m examples.demo_session

lab: venv
	$(VENV)/bin/jupyter lab --notebook-dir=notebooks $$( [ "$$(id -u)" = 0 ] && echo --allow-root )

bench: venv
	$(PY) -m benchmarks.run
	$(PY) -m benchmarks.bench_observer
	$(PY) -m benchmarks.bench_convert
	$(PY) -m benchmarks.bench_verify
	$(PY) -m benchmarks.bench_bundle
	$(PY) -m benchmarks.bench_audited
	$(PY) -m benchmarks.bench_pages
	$(PY) -m benchmarks.bench_spark
	$(PY) -m benchmarks.bench_workbench
	$(PY) -m benchmarks.bench_bulk --stock
	$(PY) -m benchmarks.bench_demo
	$(PY) -m benchmarks.readme

clean:
	rm -rf $(VENV) $(VENV_LATEST) .pytest_cache .mypy_cache .ruff_cache demo_trail demo_trail_signing reports
