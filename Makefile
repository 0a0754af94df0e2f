# `make demo` and `make test` work on a fresh clone: both create .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: demo test lint bench clean

$(INSTALLED): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev,ray]'
	touch $(INSTALLED)

demo: $(INSTALLED)
	$(BIN)/distill demo -o demo-out

test: $(INSTALLED)
	$(BIN)/python -m pytest -n 2 --dist loadgroup --durations=15

lint: $(INSTALLED)
	$(BIN)/ruff check dsl synth verify distill tests benchmarks

bench: $(INSTALLED)
	for script in benchmarks/*.py; do $(BIN)/python $$script || exit 1; done

clean:
	rm -rf $(VENV) demo-out .pytest_cache .hypothesis
