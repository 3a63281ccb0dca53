# Two commands for a fresh clone:  `make run`  and  `make test`.
# Both create .venv from pyproject.toml the first time (and again when pyproject.toml changes).

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip --disable-pip-version-check -q

.PHONY: run test demo check-config clean help

help:
	@echo "make run    - demo data in SQLite (first time), then one nightly cycle as of today"
	@echo "make test   - the whole test suite (PostgreSQL/MariaDB tests need FORECASTER_TEST_*_URL)"
	@echo "make clean  - remove .venv, data/ and out/"

$(VENV)/.python-ok:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "wuye-forecaster needs Python 3.11 or newer; set PYTHON=python3.11 (or newer)")'
	$(PYTHON) -m venv $(VENV)
	@touch $@

$(VENV)/.installed: pyproject.toml $(VENV)/.python-ok
	$(PIP) install -e .
	@touch $@

$(VENV)/.installed-test: pyproject.toml $(VENV)/.installed
	$(PIP) install -e '.[test,postgres,mysql,metrics,dask]'
	@touch $@

run: $(VENV)/.installed
	$(BIN)/forecaster demo --if-absent
	$(BIN)/forecaster run

test: $(VENV)/.installed-test
	$(BIN)/python -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) data out
