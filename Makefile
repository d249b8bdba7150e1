# make test   create .venv from constraints.txt and run the test suite
# make bench  create .venv and run the quick benchmark suite (writes reports/quick/report.md)
PYTHON ?= python3
VENV   ?= .venv
PIP     = $(VENV)/bin/python -m pip
STAMP   = $(VENV)/.installed

.PHONY: test test-fast bench venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q -c constraints.txt torch==2.13.0
	$(PIP) install -q -c constraints.txt -e '.[all,dev]'
	touch $(STAMP)

test: $(STAMP)
	$(VENV)/bin/python -m pytest -q -ra

test-fast: $(STAMP)
	$(VENV)/bin/python -m pytest -q -ra -m "not slow"

bench: $(STAMP)
	$(VENV)/bin/mandril bench --suite benchmarks/suites/quick.toml --out reports/quick

clean:
	rm -rf $(VENV) reports .pytest_cache
