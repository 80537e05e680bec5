# `make demo` and `make test` work on a fresh machine: each creates .venv and
# installs the project into it on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: demo test lint dev simulator benchmark clean

$(INSTALLED): setup.py pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip uv
	$(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python -e '.[dev]'
	touch $(INSTALLED)

demo: $(INSTALLED)
	$(BIN)/hostpms demo

test: $(INSTALLED)
	$(BIN)/pytest -n 2 --dist loadfile

# Formatting and lint, as CI runs them (config in pyproject.toml).
lint: $(INSTALLED)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

dev: $(INSTALLED)
	$(BIN)/hostpms ui

simulator: $(INSTALLED)
	$(BIN)/hostpms simulator

clean:
	-$(BIN)/hostpms stop-postgres
	rm -rf $(VENV) .hostpms
