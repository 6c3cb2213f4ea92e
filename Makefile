# streamtap: the two commands in README.md are `make demo` and `make test`.
# Everything a fresh machine needs is installed by `make setup` (called by both).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup system-deps demo test test-unit lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,live]'
	touch $(STAMP)

# Fresh machine -> everything: system packages (JVM, Maven, tshark; via apt-get when root),
# the venv, then the Kafka jars from Maven Central into $STREAMTAP_HOME/kafka/lib (a no-op
# when the pom has not changed).
setup: system-deps $(STAMP)
	$(BIN)/streamtap stack install

system-deps:
	@bash stack/system-deps.sh
	@bash scripts/setup-browser.sh || echo "setup: could not install chromium; the dashboard's browser test will say so" >&2

# README command 1: the main job on the local stack. Records the bundled sample capture with
# RECORDING_KFL="http or dns" (sensor -> pipeline -> sink -> S3), lists the objects and verifies them.
demo: setup
	$(BIN)/streamtap stack up
	$(BIN)/streamtap stack status
	$(BIN)/streamtap demo

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
