# Newsdesk: `make run` (install, index corpus/, answer a sample question) and `make test`.
VENV ?= .venv
BIN := $(VENV)/bin
PYTHON ?= python3
QUESTION ?= Why is the EU considering buying Russian S-400 systems from Turkey?
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install run serve lint test bench clean messages

# torch first and pinned: 2.13.0 resolves to the local CPU wheel; unpinned pulls CUDA.
$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

# The bot's translations: each catalog compiled when its .po is newer (bot/i18n.py falls back
# to English for a language whose .mo is missing).
CATALOGS := $(patsubst %.po,%.mo,$(wildcard bot/locale/*/LC_MESSAGES/newsdesk.po))

bot/locale/%/LC_MESSAGES/newsdesk.mo: bot/locale/%/LC_MESSAGES/newsdesk.po $(BIN)/.installed
	$(BIN)/pybabel compile --domain newsdesk --input-file $< --output-file $@ --locale $*

install: $(BIN)/.installed $(CATALOGS)

run: install
	$(BIN)/newsdesk ingest corpus/
	$(BIN)/newsdesk ask "$(QUESTION)"

serve: install
	$(BIN)/newsdesk serve

lint: install
	$(BIN)/ruff check bot tests bench
	$(BIN)/ruff format --check bot tests bench
	$(BIN)/mypy

# A crashed worker fails the run at once, naming its test: pytest-xdist's replacement worker can
# re-run the crashing test or hang under --dist loadfile (pytest-xdist #784, #1378).
test: lint
	$(BIN)/pytest -q -p no:cacheprovider -n 2 --dist loadfile --max-worker-restart=0 --durations=15

bench: install
	$(BIN)/python bench/quality.py ../shared/dev-eval

clean:
	rm -rf $(VENV) index/chroma index/*.db index/*.db-*

# After changing the bot's texts: extract them and merge into every catalog, then translate
# the new entries (msgstr "") in bot/locale/<lang>/LC_MESSAGES/newsdesk.po and `make install`.
messages: install
	$(BIN)/pybabel extract -F babel.cfg -k _ -k N_ -k Said -k ngettext:1,2 --no-location --sort-output \
		--project newsdesk --version 0.1.0 -o bot/locale/newsdesk.pot .
	$(BIN)/pybabel update -D newsdesk -i bot/locale/newsdesk.pot -d bot/locale \
		--ignore-obsolete
