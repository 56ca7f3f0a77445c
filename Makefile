# ICMP: `make run` serves the app on embedded defaults; `make test` runs the suite.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
HOST ?= 127.0.0.1
PORT ?= 8000

# Development values for `make run` only (production reads the real environment).
RUN_ENV := DEBUG=1 SECRET_KEY=dev-only-insecure-key-for-make-run-0123456789abcdef \
	ALLOWED_HOSTS=127.0.0.1,localhost SECURE_SSL_REDIRECT=0

.PHONY: run test lint format venv venv-dev migrate clean

$(VENV)/bin/activate:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

# Reinstall only when a requirements file changes.
$(VENV)/.installed: requirements.txt $(VENV)/bin/activate
	$(PIP) install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements.txt requirements-dev.txt $(VENV)/.installed
	$(PIP) install --quiet -r requirements-dev.txt
	touch $@

venv: $(VENV)/.installed
venv-dev: $(VENV)/.installed-dev

run: venv
	$(RUN_ENV) $(PY) manage.py migrate --noinput
	$(RUN_ENV) $(PY) manage.py seed_templates
	$(RUN_ENV) $(PY) manage.py bootstrap_demo
	@echo "ICMP on http://$(HOST):$(PORT)/  (admin: /admin/, API docs: /api/docs/)"
	$(RUN_ENV) $(PY) manage.py runserver $(HOST):$(PORT)

test: venv-dev
	$(VENV)/bin/pytest --cov --cov-report=term --cov-fail-under=80 $(PYTEST_ARGS)

lint: venv-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: venv-dev
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .coverage staticfiles
