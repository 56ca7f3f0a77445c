# ICMP: `make run` serves the app on embedded defaults; `make test` runs the suite.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
HOST ?= 127.0.0.1
PORT ?= 8000

# Development values for `make run` only (production reads the real environment).
# The encryption key is base64 of "dev-only-make-run-key-not-secret": public, so
# never reuse a database `make run` wrote secrets into.
RUN_ENV := DEBUG=1 SECRET_KEY=dev-only-insecure-key-for-make-run-0123456789abcdef \
	FIELD_ENCRYPTION_KEYS=ZGV2LW9ubHktbWFrZS1ydW4ta2V5LW5vdC1zZWNyZXQ= \
	ALLOWED_HOSTS=127.0.0.1,localhost SECURE_SSL_REDIRECT=0 EMBEDDED_RUNNER=1

.PHONY: run test lint format venv venv-dev clean browser bench chaos

$(VENV)/bin/activate:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

# Reinstall only when a requirements file changes.
$(VENV)/.installed: requirements.txt $(VENV)/bin/activate
	$(PIP) install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements.txt requirements-dev.txt requirements-browser.txt $(VENV)/.installed
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

# Debian's Chromium for the browser tests (they skip without it, unless
# ICMP_REQUIRE_BROWSER=1, as in CI).
browser:
	bash scripts/install-browser.sh

$(VENV)/.installed-bench: requirements-bench.txt $(VENV)/.installed-dev
	$(PIP) install --quiet -r requirements-bench.txt
	touch $@

# Speed benchmarks against the production-mode stack (PostgreSQL, Redis, gunicorn,
# Celery); figures are ratios against baselines measured in the same run.
bench: $(VENV)/.installed-bench
	$(PY) -m bench.run_all $(BENCH_ARGS)

# Fault injection ("nothing lost, nothing twice") and schemathesis against /api/schema/.
chaos: $(VENV)/.installed-bench
	$(PY) -m bench.chaos $(CHAOS_ARGS)
	$(PY) -m bench.schema_fuzz

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .coverage staticfiles
