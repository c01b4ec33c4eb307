# The project's commands. `make test` is what CI runs (.ci/run): it sets up everything a
# fresh machine lacks (virtualenv, packages, the real brokers) before running the suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LINTED := stompws tests benchmarks scripts examples

.PHONY: venv lint test unit brokers brokers-down interop compat bench demo clean

venv: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,lint]'
	touch $(STAMP)

lint: venv
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)
	$(BIN)/mypy --strict stompws

brokers:
	scripts/brokers/up.sh

brokers-down:
	scripts/brokers/down.sh

interop:
	scripts/interop/setup.sh

test: venv lint brokers interop
	$(BIN)/pytest --cov=stompws --cov-report=term-missing:skip-covered tests

compat: venv brokers interop
	$(BIN)/pytest tests/interop
	$(BIN)/python scripts/interop/compat_table.py --check

unit: venv
	$(BIN)/pytest tests

bench: venv
	$(BIN)/python benchmarks/bench_codec.py

demo: venv
	$(BIN)/python examples/quickstart.py

clean:
	rm -rf $(VENV) .brokers .interop .coverage .mypy_cache .ruff_cache .pytest_cache .hypothesis
