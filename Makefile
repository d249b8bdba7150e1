# make test   create .venv from constraints.txt and run the test suite
# make bench  create .venv and run the quick benchmark suite (writes reports/quick/report.md)
# make docs   add the docs extra to .venv, build the site into docs/_build/html (warnings are errors), check its links
PYTHON ?= python3
VENV   ?= .venv
PIP     = $(VENV)/bin/python -m pip
STAMP   = $(VENV)/.installed
DOCS_STAMP = $(VENV)/.installed-docs

.PHONY: test test-fast bench docs venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@echo "[1/3] creating $(VENV) with $(PYTHON)"
	$(PYTHON) -m venv $(VENV)
	@echo "[2/3] installing torch 2.13.0 (CPU) first, so nothing pulls a CUDA build (about a minute)"
	$(PIP) install -q -c constraints.txt torch==2.13.0
	@echo "[3/3] installing mandril and its pinned environment from constraints.txt (about 2 minutes;"
	@echo "      pip's warning that typer has no extra 'all' is harmless: minari 0.4.3 asks for it)"
	$(PIP) install -q -c constraints.txt -e '.[all,dev]'
	@touch $(STAMP)
	@echo "$(VENV) is ready"

test: $(STAMP)
	$(VENV)/bin/python -m pytest -q -ra

test-fast: $(STAMP)
	$(VENV)/bin/python -m pytest -q -ra -m "not slow"

bench: $(STAMP)
	@echo "make bench: the quick suite (benchmarks/suites/quick.toml) with 2 workers into reports/quick;"
	@echo "            a rerun continues or re-reports it (--resume), it never retrains what is done."
	$(VENV)/bin/mandril bench run benchmarks/suites/quick.toml --out reports/quick --workers 2 --resume

$(DOCS_STAMP): $(STAMP) pyproject.toml constraints.txt
	@echo "installing the docs extra (Sphinx, furo, MyST, sphinx-autodoc-typehints) from constraints.txt"
	$(PIP) install -q -c constraints.txt -e '.[all,dev,docs]'
	@touch $(DOCS_STAMP)

docs: $(DOCS_STAMP)
	@echo "make docs: builds docs/_build/html (runs the tutorials, renders the family pictures); -W: a warning fails it"
	MPLBACKEND=Agg $(VENV)/bin/python -m sphinx -b html -W --keep-going -n docs docs/_build/html
	$(VENV)/bin/python docs/check_links.py docs/_build/html

clean:
	rm -rf $(VENV) reports .pytest_cache docs/_build
