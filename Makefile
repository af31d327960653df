# butterquant: `make demo` runs the daily market job on the embedded default (synthetic
# market, local storage); `make test` runs the test suite. Each target creates or refreshes
# the virtual environment in .venv first, so a fresh clone needs only Python 3.11+.

PYTHON ?= $(shell command -v python3.11 || command -v python3.12 || command -v python3.13 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export BUTTERQUANT_DATA_DIR ?= $(CURDIR)/data
export DAGSTER_HOME ?= $(BUTTERQUANT_DATA_DIR)/dagster

.PHONY: demo test bench dev lint install instance clean browser

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if (3, 11) <= sys.version_info[:2] <= (3, 13) else "Python 3.11 to 3.13 is required")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

# The instance lives under the data root; its configuration is the repository's dagster.yaml.
instance:
	@mkdir -p $(DAGSTER_HOME)
	@cp dagster.yaml $(DAGSTER_HOME)/dagster.yaml

demo: $(STAMP) instance
	$(BIN)/butterquant demo

# The browser test renders the reports in Debian's headless Chromium (no browser download
# of its own: the closed network reaches only the package registries).
browser:
	@if [ ! -x /usr/bin/chromium ]; then \
		SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$SUDO apt-get update && \
		$$SUDO apt-get install -y --no-install-recommends chromium fonts-dejavu-core; \
	fi

test: $(STAMP) browser
	$(BIN)/ruff check butterquant_dagster butterquant_dagster_tests benchmarks
	$(BIN)/ruff format --check butterquant_dagster butterquant_dagster_tests benchmarks
	$(BIN)/pytest -n 2 --dist loadfile

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_market.py
	$(BIN)/python benchmarks/bench_scan.py
	$(BIN)/python benchmarks/bench_models.py

dev: $(STAMP) instance
	$(BIN)/dagster dev -h 127.0.0.1 -p 3000 -w workspace.yaml

lint: $(STAMP)
	$(BIN)/ruff check butterquant_dagster butterquant_dagster_tests benchmarks
	$(BIN)/ruff format --check butterquant_dagster butterquant_dagster_tests benchmarks

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
