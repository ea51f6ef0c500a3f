# Newsdesk: `make run` (install, index corpus/, answer a sample question) and `make test`.
VENV ?= .venv
BIN := $(VENV)/bin
PYTHON ?= python3
QUESTION ?= Why is the EU considering buying Russian S-400 systems from Turkey?
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install run serve lint test bench clean

# torch first and pinned: 2.13.0 resolves to the local CPU wheel; unpinned pulls CUDA.
$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

install: $(BIN)/.installed

run: install
	$(BIN)/newsdesk ingest corpus/
	$(BIN)/newsdesk ask "$(QUESTION)"

serve: install
	$(BIN)/newsdesk serve

lint: install
	$(BIN)/ruff check bot tests bench
	$(BIN)/ruff format --check bot tests bench
	$(BIN)/mypy

test: lint
	$(BIN)/pytest -q -p no:cacheprovider -n 2 --dist loadfile --durations=15

bench: install
	$(BIN)/python bench/quality.py ../shared/dev-eval

clean:
	rm -rf $(VENV) index/chroma index/*.db index/*.db-*
