# Everything a fresh clone needs: `make demo` and `make test` set themselves up.
SHELL := /bin/bash
PYTHON ?= python3
AIRFLOW_VERSION ?= 3.3.2
VENV ?= .venv
BIN := $(VENV)/bin
# Two stamps in one venv. DEMO_STAMP: the package (editable), Airflow and pytest (the `testing` extra:
# scripts/demo.py takes connection_json from the pytest plugin), all `make demo` needs.
# STAMP: that plus the PEP 735 `dev` group (pytest, ruff, mypy, moto, twine, ...) for the test targets;
# it touches DEMO_STAMP too, so `make test` then `make demo` installs nothing, and `make demo` then
# `make test` adds only the group. Either install removes every stamp first (another Airflow version's too).
STAMP := $(VENV)/.installed-$(AIRFLOW_VERSION)
DEMO_STAMP := $(VENV)/.installed-demo-$(AIRFLOW_VERSION)
# Every install resolves inside the committed constraints of its Airflow line (`make constraints` refreshes
# them): CI never picks up a transitive release that appeared since (fastapi, cadwyn, universal-pathlib broke
# Airflow 3.0 and 3.2 that way).
CONSTRAINTS := constraints/airflow-$(AIRFLOW_VERSION).txt
PIN := -c $(CONSTRAINTS)
# pytest-xdist workers: the suite waits on HTTP and subprocesses about half the time, so 3 fill 2 cores.
XDIST ?= 3

.PHONY: install test test-matrix lint typecheck pytest demo bench bench-deps clean

define VENV_UV
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade "uv>=0.8"
endef

$(STAMP): pyproject.toml Makefile $(CONSTRAINTS)
	$(VENV_UV)
	$(BIN)/uv pip install --python $(BIN)/python $(PIN) -e . --group dev "apache-airflow==$(AIRFLOW_VERSION)"
	rm -f $(VENV)/.installed-*
	touch $@ $(DEMO_STAMP)

$(DEMO_STAMP): pyproject.toml Makefile $(CONSTRAINTS)
	$(VENV_UV)
	$(BIN)/uv pip install --python $(BIN)/python $(PIN) -e ".[testing]" "apache-airflow==$(AIRFLOW_VERSION)"
	rm -f $(VENV)/.installed-*
	touch $@

install: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest -n $(XDIST)

test: lint typecheck pytest test-airflow test-production

# The Airflow lines the provider claims, newest patch of each. The newest runs everything (`make test`); each
# older one runs the compatibility suite (tests marked `compat`: every operator, sensor and trigger mode
# through dag.test(), the durable fallback, assets, object storage, the connection form's metadata, the
# example DAGs) and the demo, in its own venv `.venv-airflow-<version>`. Lint and types run once, on the newest.
LINES := 2.11.2 3.0.6 3.1.8 3.2.2 3.3.2
OLDER_LINES ?= 2.11.2 3.0.6 3.1.8 3.2.2
AIRFLOW_2_VERSION ?= 2.11.2
test-matrix: test
	set -e; for v in $(OLDER_LINES); do start=$$(date +%s); \
		$(MAKE) test-compat AIRFLOW_VERSION=$$v VENV=.venv-airflow-$$v; \
		echo "[timing] Airflow $$v (install, compatibility suite, demo): $$(( $$(date +%s) - start )) s"; done

test-compat: $(STAMP)
	$(BIN)/pytest -m compat -n $(XDIST)
	$(BIN)/python scripts/demo.py
.PHONY: test-compat

# Re-resolve the constraints of every line (needs the package index): the dev group, the `testing` extra and
# what the production, UI and benchmark targets add, for Python 3.11. constraints/pins-<version>.txt holds the
# upper bounds a line needs on top of Airflow's own requirements (see the comments there).
constraints:
	$(VENV_UV)
	set -e; for v in $(LINES); do \
		printf '%s\n' "apache-airflow[celery,postgres,amazon]==$$v" "celery<5.7" playwright psutil \
			apache-airflow-providers-http apache-airflow-providers-dbt-cloud \
		| $(BIN)/uv pip compile pyproject.toml - --group dev --extra testing --python-version 3.11 -q \
			$$(test -f constraints/pins-$$v.txt && echo -c constraints/pins-$$v.txt) \
			--custom-compile-command "make constraints" -o constraints/airflow-$$v.txt; \
	done
.PHONY: constraints test-matrix

demo: $(DEMO_STAMP)
	$(BIN)/python scripts/demo.py

# The peers the benchmarks measure against, curl, and the S3 server (moto) with its s3fs client: only `make bench`
# needs them (the dev group has the last three too).
BENCH_STAMP := $(VENV)/.bench-deps-$(AIRFLOW_VERSION)
$(BENCH_STAMP): $(STAMP)
	command -v curl >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq curl >/dev/null)
	$(BIN)/uv pip install --python $(BIN)/python $(PIN) "apache-airflow==$(AIRFLOW_VERSION)" apache-airflow-providers-http apache-airflow-providers-dbt-cloud psutil "apache-airflow-providers-amazon[s3fs]" s3fs "moto[server]>=5"
	touch $@

bench-deps: $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(BIN)/python -m benchmarks

clean:
	rm -rf .venv .venv-airflow-* build dist *.egg-info

# The connection form in headless Debian Chromium (Playwright drives the system browser; no `playwright install`).
test-ui: $(STAMP)
	test -x /usr/bin/chromium || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null)
	$(BIN)/uv pip install --python $(BIN)/python $(PIN) playwright
	SESTEK_REQUIRE_UI=1 $(BIN)/pytest tests/ui -m ui -p no:randomly
.PHONY: test-ui

# The browser check on both Airflow lines (2.11's Flask UI has its own test in the same module).
test-ui-matrix: test-ui
	$(MAKE) test-ui AIRFLOW_VERSION=$(AIRFLOW_2_VERSION) VENV=.venv-airflow-$(AIRFLOW_2_VERSION)
.PHONY: test-ui-matrix

# The real-Airflow reliability tests (tests/real_airflow, ~2.5 min): scheduler, dag-processor, triggerer and
# api-server as processes, the triggerer SIGKILLed mid-wait, a secrets scan of logs and metadata DB.
test-airflow: $(STAMP)
	$(BIN)/pytest tests/real_airflow -m airflow_real
.PHONY: test-airflow

# The production-shaped deployment (tests/production): PostgreSQL and Redis from Debian's packages (installed
# here when absent), Airflow's celery/postgres/amazon extras, two Celery workers and two triggerers, on 127.0.0.1.
# celery<5.7: celery 5.7 removed `celery.backends.database.retry`, which the newest celery provider (3.26) imports.
PRODUCTION_STAMP = $(VENV)/.installed-production-$(AIRFLOW_VERSION)
$(PRODUCTION_STAMP): $(STAMP)
	(ls /usr/lib/postgresql/*/bin/initdb && test -x /usr/bin/redis-server) >/dev/null 2>&1 || \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql redis-server >/dev/null)
	$(BIN)/uv pip install --python $(BIN)/python $(PIN) -e . --group dev "apache-airflow[celery,postgres,amazon]==$(AIRFLOW_VERSION)" "celery<5.7"
	touch $@

test-production: $(PRODUCTION_STAMP)
	$(BIN)/pytest tests/production/test_production.py -m airflow_production -p no:randomly

# The disruption scenarios on the same deployment (both triggerers killed, clears of mapped runs, Redis, scheduler
# and PostgreSQL killed, one model id mapped twice; ~15 min, one deployment per module); not part of CI.
PRODUCTION_DISRUPTIONS = tests/production/test_production_lifecycle.py \
	tests/production/test_production_infrastructure_restarts.py tests/production/test_production_duplicate_model_ids.py
test-production-disruptions: $(PRODUCTION_STAMP)
	$(BIN)/pytest $(PRODUCTION_DISRUPTIONS) -m airflow_production -p no:randomly
# Its former name, still the one README.md gives.
test-production-attack: test-production-disruptions
.PHONY: test-production test-production-disruptions test-production-attack
