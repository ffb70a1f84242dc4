# XRouter: `make run` serves the demo, `make test` runs every test, `make bench` measures.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test bench chaos lint venv clean

venv: $(STAMP)

$(STAMP): requirements/base.txt requirements/dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements/dev.txt
	touch $(STAMP)

run: venv
	$(PY) manage.py run_demo

NODE_DEPS := tests/node/node_modules/.package-lock.json

$(NODE_DEPS): tests/node/package-lock.json
	cd tests/node && npm ci --no-audit --no-fund --silent

# Each run gets Redis keys and bus channels of its own, so runs side by side never hear each other.
test: venv $(NODE_DEPS)
	XROUTER_REDIS_NAMESPACE=$${XROUTER_REDIS_NAMESPACE:-xrtest$$$$} $(PY) -m pytest

bench: venv
	@command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk) || \
		{ echo "make bench needs wrk: sudo apt-get install -y wrk"; exit 1; }
	$(PY) bench/run.py

# The reliability battery (issue 14, bench/chaos/README.md): its own PostgreSQL, Redis, emulators, fault proxies
# and gateway processes; about 15 minutes. Writes bench/results/chaos.md and chaos.json. In the background:
#   nohup nice make chaos > var/chaos.log 2>&1 &
chaos: venv
	$(PY) -m bench.chaos

lint: venv
	$(VENV)/bin/ruff check apps xrouter_project tests bench
	$(VENV)/bin/hadolint Dockerfile

clean:
	rm -rf $(VENV) db.sqlite3 staticfiles
