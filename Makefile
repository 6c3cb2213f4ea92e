# streamtap: the two commands in README.md are `make demo` and `make test`.
# Everything a fresh machine needs is installed by `make setup` (called by both).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup system-deps native demo test test-unit lint bench clean

# The sensor engine's hot modules compiled with mypyc (scripts/build_native.py; see
# producers/_native.py). Rebuilt whenever any of their sources changes; STREAMTAP_PURE=1 skips
# the build (and removes an old one), so the same make targets run the pure Python engine.
NATIVE     := $(VENV)/.native
NATIVE_SRC := producers/_native.py producers/engine.py producers/records.py producers/names.py \
	producers/dissect/base.py producers/capture/pcap.py \
	scripts/build_native.py $(wildcard producers/decode/*.py producers/reassembly/*.py \
	producers/dissect/http1/*.py producers/dissect/dns/*.py)
# Tests check that the compiled engine is the one loaded unless the pure one was asked for.
EXPECT_NATIVE = $(if $(filter-out 0,$(STREAMTAP_PURE)),,STREAMTAP_EXPECT_NATIVE=1)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,live]'
	touch $(STAMP)

# Fresh machine -> everything: system packages (JVM, Maven, tshark; via apt-get when root),
# the venv, then the Kafka jars from Maven Central into $STREAMTAP_HOME/kafka/lib (a no-op
# when the pom has not changed).
setup: system-deps $(STAMP) $(NATIVE)
	$(BIN)/streamtap stack install

$(NATIVE): $(STAMP) $(NATIVE_SRC)
	$(BIN)/python scripts/build_native.py
	@if [ -z "$$STREAMTAP_PURE" ] || [ "$$STREAMTAP_PURE" = 0 ]; then touch $@; else rm -f $@; fi

native: $(NATIVE)

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
	$(EXPECT_NATIVE) $(BIN)/pytest -q

test-unit: $(STAMP) $(NATIVE)
	$(EXPECT_NATIVE) $(BIN)/pytest -q tests/unit

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy streamtap stack producers pipeline sinks replay

clean:
	-$(BIN)/streamtap stack down
	-$(PYTHON) scripts/build_native.py --clean
	rm -rf $(VENV) .streamtap
