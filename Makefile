# Inside Out. Type `make` to see what each target does.
.DEFAULT_GOAL := help
SHELL := /bin/bash

PYTHON  ?= python3
UV_VERSION := 0.13.9
VENV    := .venv
BIN     := $(VENV)/bin
KERNEL  := inside-out
DATA    ?= data/sample
PARAMS  ?=
OUT     ?= reports
SEED    ?= 20240331

# Bytecode is compiled at install: otherwise every notebook kernel recompiles pandas,
# seaborn and statsmodels from source (several seconds each; see shared/performance-notes.md).
export UV_COMPILE_BYTECODE := 1
export UV_PROJECT_ENVIRONMENT := $(abspath $(VENV))
export PYTHONDONTWRITEBYTECODE :=

INSTALLED := $(VENV)/.installed-$(KERNEL)

## Show this help
.PHONY: help
help:
	@awk '/^## /{doc=substr($$0,4); next} /^\.PHONY/{next} /^[a-zA-Z_-]+:/{if (doc != "") {split($$1,t,":"); printf "  make %-9s %s\n", t[1], doc}} {doc=""}' $(MAKEFILE_LIST)
	@echo
	@echo "  Variables: DATA=$(DATA)  PARAMS=$(PARAMS)  OUT=$(OUT)  SEED=$(SEED)"
	@echo "  Quick start:  make report   then   make test"

$(INSTALLED): pyproject.toml uv.lock
	@echo "==> Creating $(VENV) and installing the locked environment (uv.lock)"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	@$(BIN)/uv sync --frozen --inexact --extra dev --quiet
	@$(BIN)/python -m ipykernel install --sys-prefix --name $(KERNEL) \
		--display-name "Inside Out (Python 3)" > /dev/null
	@touch $@

## Create .venv from uv.lock and register the Jupyter kernel "inside-out"
.PHONY: install
install: $(INSTALLED)

data/sample/.complete: | $(INSTALLED)
	@echo "==> Generating the synthetic sample study in data/sample (seed $(SEED))"
	@$(BIN)/python -m analysis synth --out data/sample --seed $(SEED)
	@touch $@

## Generate the synthetic sample study in data/sample (if absent)
.PHONY: data
data: data/sample/.complete

## Execute the notebooks on DATA with papermill and render HTML under reports/
.PHONY: report
report: $(INSTALLED) $(if $(filter data/sample,$(DATA)),data/sample/.complete)
	@$(BIN)/python -m analysis report --data $(DATA) --out $(OUT) $(if $(PARAMS),--params $(PARAMS))

## Calibration study: our tests vs a naive analysis on simulated data (REPLICATES=200)
.PHONY: validate
validate: $(INSTALLED)
	@$(BIN)/python -m analysis calibrate --out $(OUT)/calibration $(if $(REPLICATES),--replicates $(REPLICATES))

## Run the test suite (installs everything it needs first)
.PHONY: test
test: $(INSTALLED) browser data/sample/.complete
	@$(BIN)/python -m pytest

## Time estimate and report on three study sizes, up to 10M answers (SIZES="small medium large")
.PHONY: bench
bench: $(INSTALLED)
	@$(BIN)/python -m analysis.benchmark --out $(OUT)/benchmark $(if $(SIZES),--sizes $(SIZES))

## Install Debian's chromium for the browser tests, if it is missing
.PHONY: browser
browser:
	@command -v chromium > /dev/null || { \
		echo "==> Installing Debian's chromium for the browser tests"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium > /dev/null; }

## Open JupyterLab on notebooks/ with the project kernel
.PHONY: lab
lab: $(INSTALLED) data/sample/.complete
	@$(BIN)/jupyter lab notebooks/

## Check style with ruff
.PHONY: lint
lint: $(INSTALLED)
	@$(BIN)/ruff check analysis tests
	@$(BIN)/ruff format --check analysis tests

## Remove the environment, generated data (sample, bench) and reports
.PHONY: clean
clean:
	rm -rf $(VENV) data/sample data/bench reports/* .pytest_cache .ruff_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
