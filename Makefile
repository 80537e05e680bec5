# `make demo` and `make test` work on a fresh machine: each creates .venv and
# installs the project into it on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: demo test lint dev simulator benchmark synth clean

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

# infra/: the AWS CDK app. `make synth` writes every stage's CloudFormation templates to
# infra/cdk.out/ with no AWS account; the `cdk` CLI comes from npm (pinned in infra/).
CDK_NODE_MODULES := infra/node_modules/.installed

$(CDK_NODE_MODULES): infra/package.json infra/package-lock.json
	npm ci --prefix infra --no-audit --no-fund
	touch $(CDK_NODE_MODULES)

synth: $(INSTALLED) $(CDK_NODE_MODULES)
	cd infra && JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION=1 ./node_modules/.bin/cdk synth \
		--app "$(abspath $(BIN))/python app.py" --output cdk.out --quiet --no-notices
	@ls infra/cdk.out/assembly-*/*.template.json

clean:
	-$(BIN)/hostpms stop-postgres
	rm -rf $(VENV) .hostpms infra/cdk.out infra/node_modules
