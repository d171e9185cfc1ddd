# streamproc — every README command is a target here. `make help` lists them.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=
DEMO_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help system-deps setup demo test test-unit test-integration lint format typecheck image-check ci broker-start broker-stop broker-status clean \
	bench-offline bench-ingest bench-latency bench-state bench-scaleout bench-hostile bench-soak bench-worker sim-false-alarms

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  make %-18s %s\n", $$1, $$2}'

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test,registry]"
	@touch $@

system-deps: ## Install the Debian packages the broker needs (Java 17, Maven) if missing
	bash scripts/install-system-deps.sh

setup: system-deps $(BIN)/.installed ## Install system packages, create .venv, install streamproc[test,registry]

demo: setup ## The main command: local Kafka + worker + a live model with a scripted incident (~4 min: an input incident and a concept drift)
	$(BIN)/streamproc demo $(DEMO_ARGS)

test: setup ## Set up, then run every test (unit + integration on a real Kafka broker)
	$(BIN)/pytest $(PYTEST_ARGS)

test-unit: setup ## Unit tests only (no broker)
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

test-integration: setup ## Integration tests only (real Kafka; started from the official jars if needed)
	$(BIN)/pytest tests/integration $(PYTEST_ARGS)

lint: setup ## ruff lint and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup ## Apply ruff's fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

typecheck: setup ## mypy (disallow_untyped_defs) on streamproc/
	$(BIN)/mypy

# Builds the Dockerfile with buildah (no Docker engine; root; installs buildah and
# debootstrap with apt-get if missing) on a local stand-in for the python base image, then
# runs the image as the compose stack's reference, worker and traffic services against a
# broker on the host: uid 10001, --version, worker --help, /metrics counting every record,
# HEALTHCHECK passing, clean SIGTERM, nothing written outside /tmp and the data volume.
# Cost (2 cores; printed per phase): ~2.3 min cold (debootstrap ~70 s, build 35-50 s, the
# runs ~35 s; +~30 s of apt-get where buildah is missing), ~1-1.5 min once the base is
# cached (~/.cache/streamproc/image-base and buildah's storage).
image-check: setup ## Build the container image with buildah and run it against a real broker (CI)
	$(BIN)/python scripts/image_check.py

ci: lint typecheck test image-check ## What .ci/run does: lint, types, all tests, the image

broker-start: setup ## Start the local dev broker on 127.0.0.1:9092
	$(BIN)/streamproc broker start

broker-stop: setup ## Stop the local dev broker
	$(BIN)/streamproc broker stop

broker-status: setup ## Show the local dev broker's state and log path
	$(BIN)/streamproc broker status

bench-offline: setup ## Benchmark: reference build rows/s and drift time vs whylogs and Evidently
	$(BIN)/python benchmarks/bench_offline.py

bench-ingest: setup ## Benchmark: ingest events/s on one core vs raw consume and naive Faust
	$(BIN)/python benchmarks/bench_ingest.py

bench-latency: setup ## Benchmark: drift-alert latency at a steady rate; staleness timing
	$(BIN)/python benchmarks/bench_latency.py

bench-state: setup ## Benchmark: state bytes per feature-window, worker RSS, recovery time
	$(BIN)/python benchmarks/bench_state.py

bench-scaleout: setup ## Benchmark: throughput of one vs two workers on 4 partitions
	$(BIN)/python benchmarks/bench_scaleout.py

bench-hostile: setup ## Benchmark: `streamproc worker` peak RSS, hostile input mix vs clean
	$(BIN)/python benchmarks/bench_hostile.py

bench-soak: setup ## Soak: `streamproc worker` 30 min at 1,000 events/s, a fault every 5 min (RSS, lag, recovery)
	$(BIN)/python benchmarks/bench_soak.py

bench-worker: setup $(BIN)/py-spy ## Benchmark: `streamproc worker` events/s and CPU/event vs consume + orjson, 1 and 2 cores, live and replay, and a profile of each mode
	$(BIN)/python benchmarks/bench_worker.py --profile

$(BIN)/py-spy: pyproject.toml
	$(BIN)/pip install --quiet -e ".[bench]"
	@touch $@

sim-false-alarms: setup ## Simulation: false-alarm rate per check and shape, windows of 100 .. 1e6 from the reference (~8 min)
	$(BIN)/python benchmarks/sim_false_alarms.py --out benchmarks/sim_false_alarms.json

clean: ## Remove the virtualenv and caches
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
