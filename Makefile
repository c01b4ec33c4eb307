# The project's commands. `make test` is what CI runs (.ci/run): it sets up everything a
# fresh machine lacks (virtualenv, packages, the real brokers) before running the suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LINTED := stompws tests benchmarks scripts examples noxfile.py

.PHONY: venv lint dist-check docs test test-cluster soak unit hermetic matrix stress brokers brokers-down interop compat bench bench-quick demo fuzz clean

venv: $(STAMP)

$(STAMP): setup.cfg pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet pip==26.3
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test,lint,release,matrix,docs,soak]'
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

# The site (mkdocs.yml): the guides and the API reference from the docstrings; any warning
# (a broken link, a page left out of the nav, a reference that does not resolve) fails it.
docs: venv
	$(BIN)/mkdocs build --strict --quiet

# The sdist and wheel a release would upload: built, checked by twine, and the wheel installed
# in a new virtualenv outside the checkout runs `stompws --version` and the quickstart.
dist-check: venv
	scripts/release/check_dist.sh

# Three phases. The broker-less suites (`hermetic`) mostly wait (heart-beat periods,
# timeouts, a silent peer's deadline: about 30 % of one core when run one test at a time), so
# pytest-xdist runs them HERMETIC_WORKERS at a time, alone on the machine. Then the tests
# against the real brokers, one at a time (they share the brokers), and meanwhile the same
# broker-less suites on the other supported Pythons (the matrix, noxfile.py), each a single
# pytest process: together they keep the 2 cores about half busy, so that neither starves
# the brokers' heart-beats. The tests marked `isolated` restart a broker or block it with an
# alarm: they run alone after the other broker tests. Coverage adds up over the runs on
# `make test`'s own interpreter (--cov-append).
HERMETIC_WORKERS ?= 4
MATRIX_WORKERS ?= 0
MATRIX_PYTHONS := 3.10 3.12 3.13
HERMETIC_MARKS := not integration and not isolated

# The slow parts of setting up (installing and starting the brokers, the Node peers, the
# matrix's virtualenvs) wait on the network and on the brokers' start: done side by side.
test: venv lint docs dist-check
	$(MAKE) --no-print-directory -j3 --output-sync=target brokers interop matrix-venvs
	rm -f .coverage
	$(BIN)/pytest -n $(HERMETIC_WORKERS) --cov=stompws --cov-report= -m "$(HERMETIC_MARKS)" tests
	$(MAKE) --no-print-directory -j$(words x $(MATRIX_PYTHONS)) --output-sync=target \
		test-brokers $(addprefix matrix-,$(MATRIX_PYTHONS))

.PHONY: test-brokers matrix-venvs $(addprefix matrix-,$(MATRIX_PYTHONS))
test-brokers: venv
	$(BIN)/pytest --cov=stompws --cov-append --cov-report= \
		-m "integration and not isolated and not cluster" tests
	$(BIN)/pytest --cov=stompws --cov-append --cov-report=term-missing:skip-covered \
		-m "isolated and not cluster" tests

# --no-install: filled by matrix-venvs (three installs at once would race on the egg-info).
$(addprefix matrix-,$(MATRIX_PYTHONS)): matrix-%: venv
	$(BIN)/nox --no-install -s hermetic-$* -- -n $(MATRIX_WORKERS)

# The matrix's virtualenvs, made and filled (not while dist-check builds: both write the
# package's egg-info in the checkout).
matrix-venvs: venv
	$(BIN)/nox -s $(addprefix hermetic-,$(MATRIX_PYTHONS)) --install-only

# Fail-over across a three-node RabbitMQ cluster (scripts/brokers/cluster.sh: the tests form
# it when it is not running and stop it afterwards). About 2.5 minutes on this 2-core machine
# (forming the cluster about 30 s, each transport about 50 s, mostly the restarts of killed
# nodes): more than `make test` may grow by, so .ci/run runs this target after `make test`.
test-cluster: venv
	scripts/brokers/install.sh
	$(BIN)/pytest -m cluster tests/cluster

# The suite without the real brokers or Node: unit tests and everything against the embedded
# broker, fake peers and the fault proxy in this process.
# Isolated tests in their own run as in `test`. None is hermetic today: pytest's "no
# tests collected" (exit status 5) is then no failure.
hermetic: venv
	$(BIN)/pytest -n $(HERMETIC_WORKERS) -m "$(HERMETIC_MARKS)" tests
	$(BIN)/pytest -m "isolated and not integration" tests || test $$? -eq 5

# `make hermetic` on every supported CPython (noxfile.py: pyenv's interpreters, never a
# download); `make matrix PY=3.12` runs one.
matrix: venv
	$(BIN)/nox $(if $(PY),-s hermetic-$(PY)) -- -n $(HERMETIC_WORKERS)

# The timing-sensitive tests, STRESS_COUNT times each, with STRESS_BUSY threads burning CPU
# in the same process (tests/support/busy.py): a loaded 2-core CI machine, where a wait that
# is "long enough" on an idle one is not. Every one must pass every time. A new race or
# model-based test goes into STRESS_TESTS below (a test id or a file); `make stress
# STRESS_TESTS=<id>` runs just that one. STRESS_BROKER_TESTS need the real brokers and run
# too with STRESS_BROKERS=1.
STRESS_COUNT ?= 50
STRESS_BUSY ?= 3
STRESS_TESTS += \
	tests/test_client.py::test_heartbeats_are_sent_when_idle \
	tests/test_client.py::test_slow_listener_causes_no_false_timeout \
	tests/test_core_defects.py::test_bytes_waiting_at_the_deadline_are_life_between_two_reads \
	tests/testing/test_heartbeats.py \
	tests/test_reconnect.py::test_pending_receipts_and_transactions_fail_at_the_loss \
	tests/testing/test_faults.py::test_delay_frames \
	tests/faults/test_proxy.py::test_delay_adds_latency_per_chunk \
	tests/faults/test_fake_peers.py \
	tests/test_core_defects.py::test_loss_right_after_connected_starts_a_reconnect \
	tests/test_core_defects.py::test_disconnect_during_connect_wins \
	tests/test_core_defects.py::test_disconnect_from_on_connected_wins \
	tests/test_core_defects.py::test_subscribe_in_on_connected_after_reconnect \
	tests/test_core_defects.py::test_disconnect_is_bounded_while_a_send_is_blocked \
	tests/test_races.py::test_tls_heartbeats_on_time_keep_the_client_alive \
	tests/test_races.py::test_tls_silent_peer_is_detected \
	tests/test_races.py::test_tls_client_sends_its_heartbeats \
	tests/test_races.py::test_reconnect_fails_over_to_the_next_url \
	tests/test_races.py::test_send_racing_connect_is_never_early_nor_lost \
	tests/test_races.py::test_unsubscribe_racing_delivery_stops_callbacks_when_it_returns \
	tests/test_races.py::test_unsubscribe_waits_for_a_callback_under_way \
	tests/test_races.py::test_unsubscribe_from_its_own_callback_returns_at_once \
	tests/test_core_defects.py::test_receipt_in_doubt_stands_once_a_later_frame_is_answered \
	tests/test_core_defects.py::test_receipt_after_an_unnamed_error_then_a_close_is_that_error
STRESS_BROKER_TESTS += \
	tests/integration/test_heartbeats.py \
	tests/faults/test_slow_links.py::test_receipts_arrive_through_latency_and_receipt_timeout_holds
STRESS_BROKERS ?= 0
STRESS_ARGS ?=

# The model-based test (tests/test_model.py) runs STRESS_MODEL_EXAMPLES random examples
# (`make test` runs 25 fixed ones), with the same busy threads.
STRESS_MODEL_EXAMPLES ?= 300

stress: venv $(if $(filter 1,$(STRESS_BROKERS)),brokers)
	STOMPWS_MODEL_EXAMPLES=$(STRESS_MODEL_EXAMPLES) STOMPWS_MODEL_RANDOM=1 \
		$(BIN)/pytest -p no:cacheprovider -q --busy-threads=$(STRESS_BUSY) tests/test_model.py
	$(BIN)/pytest -p no:cacheprovider -q --count=$(STRESS_COUNT) \
		--busy-threads=$(STRESS_BUSY) $(STRESS_ARGS) \
		$(STRESS_TESTS) $(if $(filter 1,$(STRESS_BROKERS)),$(STRESS_BROKER_TESTS))

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

# A soak (benchmarks/soak.py): SOAK_MINUTES (default 10) of steady traffic against RabbitMQ
# over WebSocket and TCP, each through a fault proxy cut once a minute; fails when RSS, open
# fds or threads trend upward, a confirmed message is lost or a call runs past its timeout.
# Samples in /tmp/stompws-soak.csv, the plot in benchmarks/soak.png. Not part of `make test`.
SOAK_MINUTES ?= 10

soak: venv brokers
	$(BIN)/python benchmarks/soak.py --minutes $(SOAK_MINUTES)

demo: venv
	$(BIN)/python examples/quickstart.py

clean:
	rm -rf $(VENV) site .brokers .interop .coverage .mypy_cache .ruff_cache .pytest_cache .hypothesis
