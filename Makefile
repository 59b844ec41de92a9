# photoproc — the two commands of the README:
#   make run    set up everything and start the app (Voilà + API on 127.0.0.1)
#   make test   set up everything and run every test
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
DATA   ?= $(CURDIR)/data
HOST   ?= 127.0.0.1
PORT   ?= 8866

export PHOTOPROC_DATA_DIR ?= $(DATA)

.PHONY: run demo test lint venv system-deps samples clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# Re-install when pyproject.toml changes.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e ".[cpu,test]"
	touch $@

venv: $(VENV)/.installed

# Debian's chromium for the browser tests (never `playwright install`: it downloads a browser).
system-deps:
	@if [ ! -x /usr/bin/chromium ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else \
	    echo "note: /usr/bin/chromium missing (apt-get install chromium); browser tests will be skipped"; \
	  fi; \
	fi

samples: venv
	$(BIN)/python -c "from photoproc.samples import write_samples; write_samples('$(DATA)/samples')"

# The Voilà app and the API on one port; SQLite and files under $(DATA). Works offline
# (the `grabcut` model needs no download). `make demo` processes the bundled samples
# with the batch CLI instead.
run: venv
	$(BIN)/photoproc app --host $(HOST) --port $(PORT) --data-dir $(DATA)

demo: venv samples
	$(BIN)/photoproc process $(DATA)/samples --out $(DATA)/results --model grabcut --crop-face

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: venv system-deps lint
	$(BIN)/python -m pytest -q -p no:cacheprovider

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
