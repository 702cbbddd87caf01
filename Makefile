# One virtual environment for everything; each target installs what it needs first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed
EVENT ?=
PORT ?= 8720
TIME_SCALE ?= 60

.PHONY: help install run serve test test-fast lint types check bench emulator package deploy-yc clean

help:
	@echo "make run      - trigger a backup on the local emulator, follow it, print the result event"
	@echo "make serve    - the function's HTTP routes on 127.0.0.1:8720 over the local platform (SCENARIO=fail|slow)"
	@echo "make test     - lint, types and the whole test suite (what .ci/run calls)"
	@echo "make test-fast - lint, types and the tests without tests/chaos and tests/deploy"
	@echo "make bench    - benchmarks; writes bench/results.json (untracked); BENCH_ARGS=\"--only cpu\" for figure 8 alone"
	@echo "make emulator - the local Yandex Cloud emulator on port 8710"
	@echo "make package  - the Yandex Cloud Functions zip in dist/"

$(STAMP): requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(PY) -m local.runtime $(if $(EVENT),--event $(EVENT),) $(if $(SCENARIO),--scenario $(SCENARIO),) $(if $(CLOUD),--cloud $(CLOUD),) $(if $(TIMEOUT),--timeout $(TIMEOUT),)

serve: $(STAMP)
	@$(PY) -m local.serve --port $(PORT) $(if $(SCENARIO),--scenario $(SCENARIO),)

lint: $(STAMP)
	$(VENV)/bin/ruff check function local tests bench scripts ci
	$(VENV)/bin/ruff format --check function local tests bench scripts ci

types: $(STAMP)
	$(VENV)/bin/mypy function local scripts bench ci

test: lint types
	$(VENV)/bin/pytest -q

# The inner loop: no chaos runs (slow, randomised) and no deploy checks (SAM translation, cfn-lint, fake CLIs).
test-fast: lint types
	$(VENV)/bin/pytest -q --ignore=tests/chaos --ignore=tests/deploy

check: test

bench: $(STAMP)
	$(PY) -m bench.run $(BENCH_ARGS)

emulator: $(STAMP)
	$(PY) -m local.emulator --port 8710 --time-scale $(TIME_SCALE)

# The Yandex Cloud Functions zip: .pyc files must come from the runtime's Python (3.12 for python312).
RUNTIME_PYTHON ?=
package:
	$(PYTHON) scripts/package.py $(if $(RUNTIME_PYTHON),--python $(RUNTIME_PYTHON),)

deploy-yc: package
	deploy/yandex/deploy-yc.sh dist/function.zip

clean:
	rm -rf $(VENV) dist build .pytest_cache .mypy_cache .ruff_cache
