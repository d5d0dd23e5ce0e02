# Inside Out. Type `make` to see what each target does.
.DEFAULT_GOAL := help
SHELL := /bin/bash

PYTHON  ?= python3
UV_VERSION := 0.13.9
# SHA-256 of the uv $(UV_VERSION) wheels on PyPI (pip checks them: --require-hashes): Linux
# x86_64 (glibc and musl), Linux aarch64, macOS x86_64 and arm64, Windows x86_64.
UV_SHA256 := \
	d7f459fe4fd247d830351c75686d3996ace3c6f3f728eb0e85a30b7ada0cef19 \
	2c45530751517d6c3bbc69a19473f6effe47cce047bede01ffd8af7ea7b36b25 \
	5435c5ce14a56431208ca0996416d310f1598e8c2c8ba707688985a16bb82dbe \
	c16ed11e013557536b3e60065f1b912f6407bd6518e041b961e23ef9e6b4fbf5 \
	66c512266d633bef48384a1f53003f41f2a8e7b36fe6e7fbfd3e0fd52d96fa63 \
	6a44b2ed8111d2f60d2b92627c5dccda3f7ed7570b18ce115e569cd68c28246b
VENV    := .venv
BIN     := $(VENV)/bin
KERNEL  := inside-out
DATA    ?= data/sample
PARAMS  ?=
OUT     ?= reports
SEED    ?= 20240331
# One worker per core, at most four: each test file runs whole on one worker (--dist loadfile),
# slowest files first (tests/conftest.py), so fixtures built once per file stay built once.
TEST_WORKERS ?= auto

# Bytecode is compiled at install: otherwise every notebook kernel recompiles pandas,
# seaborn and statsmodels from source (several seconds each).
export UV_COMPILE_BYTECODE := 1
export UV_PROJECT_ENVIRONMENT := $(abspath $(VENV))
export PYTHONDONTWRITEBYTECODE :=

INSTALLED := $(VENV)/.installed-$(KERNEL)

# Paths may hold spaces or quotes: every path reaches the shell as one single-quoted word.
q = '$(subst ','\'',$(1))'

## Show this help
.PHONY: help
help:
	@awk '/^## /{doc=substr($$0,4); next} /^\.PHONY/{next} /^[a-zA-Z_-]+:/{if (doc != "") {split($$1,t,":"); printf "  make %-9s %s\n", t[1], doc}} {doc=""}' $(MAKEFILE_LIST)
	@echo
	@echo "  Variables:" DATA=$(call q,$(DATA)) PARAMS=$(call q,$(PARAMS)) OUT=$(call q,$(OUT)) SEED=$(call q,$(SEED))
	@echo "  Quick start:  make report   then   make test"

$(INSTALLED): pyproject.toml uv.lock
	@echo "==> Creating $(VENV) and installing the locked environment (uv.lock)"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "uv==$(UV_VERSION) $(addprefix --hash=sha256:,$(UV_SHA256))" > $(VENV)/uv-requirement.txt
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes \
		--only-binary :all: --no-deps -r $(VENV)/uv-requirement.txt
	@$(BIN)/uv sync --frozen --inexact --extra dev --quiet
	@$(BIN)/python -m ipykernel install --sys-prefix --name $(KERNEL) \
		--display-name "Inside Out (Python 3)" > /dev/null
	@touch $@

## Create .venv from uv.lock and register the Jupyter kernel "inside-out"
.PHONY: install
install: $(INSTALLED)

data/sample/.complete: | $(INSTALLED)
	@echo "==> Generating the synthetic sample study in data/sample (seed $(SEED))"
	@$(BIN)/python -m analysis synth --out data/sample --seed $(call q,$(SEED))
	@touch $@

data/examples/raw/.complete: data/sample/.complete | $(INSTALLED)
	@echo "==> Writing the sample study as raw exports in data/examples/raw (see its mapping.yaml)"
	@$(BIN)/python -m analysis.data.raw_exports --data data/sample --out data/examples/raw
	@touch $@

## Generate the sample study in data/sample and its raw exports in data/examples/raw (if absent)
.PHONY: data
data: data/sample/.complete data/examples/raw/.complete

## Import raw exports as a dataset: make import RAW=exports MAPPING=mapping.yaml OUT=data/mine
.PHONY: import
import: $(INSTALLED)
	@$(if $(RAW),,$(error make import needs RAW=folder-of-exports (and OUT=dataset-folder)))
	@$(if $(filter file,$(origin OUT)),$(error make import needs OUT=dataset-folder (a new folder)))
	@$(BIN)/python -m analysis import $(call q,$(RAW)) \
		--mapping $(call q,$(or $(MAPPING),$(RAW)/mapping.yaml)) --out $(call q,$(OUT))

## Execute the notebooks on DATA with papermill and render HTML under reports/
.PHONY: report
report: $(INSTALLED) $(if $(filter data/sample,$(DATA)),data/sample/.complete)
	@$(BIN)/python -m analysis report --data $(call q,$(DATA)) --out $(call q,$(OUT)) \
		$(if $(PARAMS),--params $(call q,$(PARAMS)))

## Calibration study: our tests vs a naive analysis on simulated data (REPLICATES=200)
.PHONY: validate
validate: $(INSTALLED)
	@$(BIN)/python -m analysis calibrate --out $(call q,$(OUT)/calibration) \
		$(if $(REPLICATES),--replicates $(call q,$(REPLICATES)))

## Run the test suite on TEST_WORKERS processes (installs everything it needs first)
.PHONY: test
test: $(INSTALLED) browser postgres java data/sample/.complete
	@$(BIN)/python -m pytest -n $(TEST_WORKERS) --maxprocesses 4 --dist loadfile --no-loadscope-reorder

## Fuzz the command line afresh: hostile parameters, instruments, datasets (EXAMPLES=300)
.PHONY: fuzz
fuzz: $(INSTALLED)
	@HYPOTHESIS_PROFILE=fuzz FUZZ_EXAMPLES=$(call q,$(or $(EXAMPLES),300)) \
		$(BIN)/python -m pytest tests/test_fuzz.py -p no:cacheprovider

## Time estimate and report up to 10M answers, and estimate on 1,000 waves and 100,000 units
.PHONY: bench
bench: $(INSTALLED)
	@$(BIN)/python -m analysis.studies.benchmark --out $(call q,$(OUT)/benchmark) $(if $(SIZES),--sizes $(SIZES))

## Install Debian's chromium (prints report.pdf) and poppler-utils (the PDF tests), if missing
.PHONY: browser
browser:
	@command -v chromium > /dev/null && command -v pdftotext > /dev/null || { \
		echo "==> Installing Debian's chromium and poppler-utils (report.pdf and its tests)"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium poppler-utils \
			> /dev/null; }

# The tests start their own PostgreSQL server (tests/postgres_server.py). Debian keeps the
# server's programs off PATH, in /usr/lib/postgresql/<version>/bin; any version will do.
## Install Debian's postgresql (the tests start a throwaway server), if its server is missing
.PHONY: postgres
postgres:
	@ls /usr/lib/postgresql/*/bin/initdb > /dev/null 2>&1 || command -v initdb > /dev/null || { \
		echo "==> Installing Debian's postgresql (the tests start their own server)"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq postgresql > /dev/null; }

# PySpark runs its engine in a Java virtual machine; the Spark tests start it in local mode.
## Install Debian's headless OpenJDK 17 (the Spark tests run PySpark locally), if java is missing
.PHONY: java
java:
	@command -v java > /dev/null || { \
		echo "==> Installing Debian's openjdk-17-jre-headless (the Spark tests run on it)"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq openjdk-17-jre-headless \
			> /dev/null; }

# New notebooks and consoles start on the project's kernel. Jupyter refuses to run as root
# without --allow-root, and containers often run as root; LAB_ARGS adds options of your own
# (e.g. LAB_ARGS="--no-browser --ip=0.0.0.0" in a container).
LAB_FLAGS = --MappingKernelManager.default_kernel_name=$(KERNEL) \
	$(if $(filter 0,$(shell id -u)),--allow-root)

## Open JupyterLab on notebooks/ with the project kernel (LAB_ARGS: more jupyter options)
.PHONY: lab
lab: $(INSTALLED) data/sample/.complete
	@$(BIN)/jupyter lab notebooks/ $(LAB_FLAGS) $(LAB_ARGS)

## Regenerate environment.yml's pins from uv.lock (after changing the dependencies)
.PHONY: pins
pins: $(INSTALLED)
	@{ sed '/^  - pip:$$/q' environment.yml; \
	   $(BIN)/uv export --frozen --extra dev --no-hashes --no-emit-project --no-header \
	     --no-annotate --format requirements-txt | sed 's/.*/      - "&"/'; \
	   echo '      - "-e .[dev]"'; } > environment.yml.new
	@mv environment.yml.new environment.yml
	@echo "==> environment.yml pins what uv.lock pins"

## Check style with ruff
.PHONY: lint
lint: $(INSTALLED)
	@$(BIN)/ruff check analysis tests
	@$(BIN)/ruff format --check analysis tests

## Remove the environment, generated data (sample, examples, bench) and reports
.PHONY: clean
clean:
	rm -rf $(VENV) data/sample data/examples data/bench reports/* reports/.inside-out reports/.failed-* \
		reports/.partial-* .pytest_cache .ruff_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
