# drg-settlement — make install | demo | test | bench
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo serve-demo test lint bench clean migrate screenshots

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

install: $(STAMP)

migrate: install
	$(PY) manage.py migrate --noinput

demo: install
	$(PY) manage.py demo $(DEMO_ARGS)

serve-demo: install  # the database `make demo` made, in the admin at http://127.0.0.1:8000/admin/ (users printed by make demo)
	DATABASE_URL=sqlite:///$(CURDIR)/var/demo.sqlite3 CELERY_BROKER_URL= $(PY) manage.py runserver 127.0.0.1:$${PORT:-8000}

lint: install  # the import contracts of pyproject.toml: layers, pure domain/ packages, no cycles
	$(VENV)/bin/lint-imports

test: lint
	$(PY) -m pytest -n $${PYTEST_WORKERS:-2} -m "not services" $(PYTEST_ARGS)
	$(PY) -m pytest -p no:xdist -m services $(PYTEST_ARGS)

screenshots: install  # docs/screenshots/*.png through headless Chromium (Debian's chromium package)
	$(PY) docs/screenshots/make_screenshots.py

bench: install
	$(PY) manage.py bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) var out bench-results .import_linter_cache
