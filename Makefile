# Two commands for a new user: `make demo` and `make test`. Both are idempotent.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
STAMP_DEMO := $(VENV)/.installed-demo
STAMP_TEST := $(VENV)/.installed-test

.PHONY: demo test install install-test clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

$(STAMP_DEMO): pyproject.toml | $(PY)
	$(PIP) install -q -e .
	touch $@

$(STAMP_TEST): pyproject.toml | $(PY)
	$(PIP) install -q -e ".[test]"
	touch $@ $(STAMP_DEMO)

install: $(STAMP_DEMO)
install-test: $(STAMP_TEST)

demo: $(STAMP_DEMO)
	$(VENV)/bin/petridish run double-descent --report

test: $(STAMP_TEST)
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) petridish-runs .pytest_cache
