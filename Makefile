# The project's commands. `make test` is what CI runs (.ci/run): it sets up everything a
# fresh machine lacks (virtualenv, packages, the real brokers) before running the suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LINTED := stompws tests benchmarks scripts examples

.PHONY: venv lint test unit brokers brokers-down interop compat bench bench-quick demo fuzz clean

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

bench: venv brokers
	$(BIN)/python benchmarks/bench_codec.py
	$(BIN)/python benchmarks/bench_levers.py
	$(BIN)/python benchmarks/bench_e2e.py
	$(BIN)/python benchmarks/bench_idle.py

bench-quick: venv
	$(BIN)/python benchmarks/bench_e2e.py --broker embedded --quick
	$(BIN)/python benchmarks/bench_idle.py --broker embedded --quick

# A million generated and mutated broker inputs through the parser and the client's receive
# path (about 3 minutes per million on one core); not part of `make test`.
fuzz: venv
	$(BIN)/python -m tests.fuzz.harness --inputs 1000000

demo: venv
	$(BIN)/python examples/quickstart.py

clean:
	rm -rf $(VENV) .brokers .interop .coverage .mypy_cache .ruff_cache .pytest_cache .hypothesis
