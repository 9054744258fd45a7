# The two commands: `make run` (the whole local stack) and `make test` (the whole suite).
# Each sets up what it needs on a fresh machine: virtual environment, packages, broker.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := 1
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
unexport PYTHONDONTWRITEBYTECODE
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c

.PHONY: run test bench lint typecheck setup broker clean

setup: $(STAMP) broker

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python >= 3.11 is required (found %s)" % sys.version.split()[0])'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "installing packages into $(VENV) (pinned in pyproject.toml)..."
	@$(PY) -m pip install --quiet --disable-pip-version-check --upgrade 'pip>=24' 2>&1 | { grep -v '^WARNING: Location' || true; }
	@$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev,infra]' 2>&1 | { grep -v '^WARNING: Location' || true; }
	@$(PY) -c 'import ocpp_core, websockets, awscrt, boto3, moto, aws_cdk' || { echo "package installation failed"; exit 1; }
	@touch $(STAMP)

# mosquitto: use the binary if present; as root with apt, install it; otherwise say how.
broker:
	@command -v mosquitto >/dev/null 2>&1 || test -x /usr/sbin/mosquitto || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing mosquitto with apt-get..."; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto >/dev/null) \
	      || { echo "mosquitto is missing and apt-get could not install it: run 'sudo apt-get install mosquitto'"; exit 1; }; \
	    systemctl disable --now mosquitto >/dev/null 2>&1 || true; \
	  else \
	    echo "mosquitto is missing: install it with 'sudo apt-get install mosquitto' (or 'brew install mosquitto')"; exit 1; \
	  fi; }

run: setup
	@$(PY) -m local_stack

test: setup
	@$(PY) -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

bench: setup
	@$(PY) -m benchmarks

lint: $(STAMP)
	@$(VENV)/bin/ruff check .
	@$(VENV)/bin/ruff format --check .

typecheck: $(STAMP)
	@$(VENV)/bin/mypy --strict ocpp_core

clean:
	rm -rf $(VENV) cdk.out .pytest_cache .hypothesis
