# Two commands on a fresh machine: `make demo` and `make test` each set up what they need.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo test bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/tocsin demo

test: install
	$(BIN)/pytest

bench: install
	$(BIN)/tocsin bench throughput --json bench-results/throughput.json

clean:
	rm -rf $(VENV) .tocsin .pytest_cache .hypothesis src/*.egg-info
