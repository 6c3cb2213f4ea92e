# streamtap: the two commands in README.md are `make demo` and `make test`.
# Everything a fresh machine needs is installed by `make setup` (called by both).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup demo test test-unit lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,live]'
	touch $(STAMP)

setup: $(STAMP)
	$(BIN)/streamtap stack install

demo: setup
	$(BIN)/streamtap stack up
	$(BIN)/streamtap stack status

test: setup
	$(BIN)/pytest -q

test-unit: $(STAMP)
	$(BIN)/pytest -q tests/unit

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy streamtap stack producers pipeline sinks replay

clean:
	-$(BIN)/streamtap stack down
	rm -rf $(VENV) .streamtap
