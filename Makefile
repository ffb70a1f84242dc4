# XRouter: `make run` serves the demo, `make test` runs every test, `make bench` measures.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test bench bench-privacy chaos lint venv lock audit clean

venv: $(STAMP)

# Installs only what the lock names, each file checked against its hash (pip itself included: it is in dev.lock).
$(STAMP): requirements/base.lock requirements/dev.lock
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --require-hashes -r requirements/dev.lock
	touch $(STAMP)

# requirements/*.txt are what people edit; the locks pin every dependency, transitive ones included, with the
# hashes of every file of each release. Resolved for CPython 3.11 on Linux x86_64 (CI's and the image's platform)
# whichever machine runs it. dev.lock is constrained to base.lock, so tests run what production ships.
# Pins already in a lock are kept; `make lock UPGRADE=1` moves everything to the newest releases.
UV_COMPILE = $(VENV)/bin/uv pip compile --quiet --generate-hashes --python-version 3.11 \
	--python-platform x86_64-manylinux_2_28 --custom-compile-command "make lock" $(if $(UPGRADE),--upgrade)

lock: venv
	$(UV_COMPILE) requirements/base.txt -o requirements/base.lock
	$(UV_COMPILE) requirements/dev.txt -c requirements/base.lock -o requirements/dev.lock
	$(UV_COMPILE) requirements/clients-openai2.txt -o requirements/clients-openai2.lock
	$(UV_COMPILE) requirements/clients-agents.txt -o requirements/clients-agents.lock

# The client-library matrix's own venvs (tests/libraries, README "Client libraries"): the libraries that cannot
# share .venv's pins (LlamaIndex and instructor: openai 2; the Agents SDK: websockets<17). From their locks, hashed;
# not byte-compiled: the cells import a small part of them (.venv-openai2 installs in ≈ 50 s with no pip cache).
CLIENT_VENVS := .venv-openai2/.installed .venv-agents/.installed

.venv-%/.installed: requirements/clients-%.lock
	test -x .venv-$*/bin/python || $(PYTHON) -m venv .venv-$*
	.venv-$*/bin/python -m pip install --quiet --no-compile --require-hashes -r $<
	touch $@

# A release step (docs/security.md, "Supply chain"): known vulnerabilities in every pinned release (dev.lock holds
# base.lock's pins too), from PyPI's advisory data, without installing anything. --strict: a release that could not
# be looked up fails the audit instead of passing unexamined.
audit: venv
	for lock in requirements/dev.lock requirements/clients-openai2.lock requirements/clients-agents.lock; do \
	  $(VENV)/bin/pip-audit --strict --disable-pip --require-hashes --progress-spinner off -r $$lock || exit 1; done

run: venv
	$(PY) manage.py run_demo

NODE_DEPS := tests/node/node_modules/.package-lock.json

$(NODE_DEPS): tests/node/package-lock.json
	cd tests/node && npm ci --no-audit --no-fund --silent

# Each run gets Redis keys and bus channels of its own, so runs side by side never hear each other.
test: venv $(NODE_DEPS) $(CLIENT_VENVS)
	XROUTER_REDIS_NAMESPACE=$${XROUTER_REDIS_NAMESPACE:-xrtest$$$$} $(PY) -m pytest

bench: venv
	@command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk) || \
		{ echo "make bench needs wrk: sudo apt-get install -y wrk"; exit 1; }
	$(PY) bench/run.py
	$(PY) bench/privacy.py  # the anonymization's cost per 1,000 characters (the headline runs with policies off)

# The personal-data detectors: precision and recall on both corpora, speed, the name model's memory.
bench-privacy: venv
	$(PY) bench/privacy.py

# The reliability battery (issue 14, bench/chaos/README.md): its own PostgreSQL, Redis, emulators, fault proxies
# and gateway processes; about 15 minutes. Writes bench/results/chaos.md and chaos.json. In the background:
#   nohup nice make chaos > var/chaos.log 2>&1 &
chaos: venv
	$(PY) -m bench.chaos

lint: venv
	$(VENV)/bin/ruff check apps xrouter_project tests bench
	$(VENV)/bin/hadolint Dockerfile
	$(VENV)/bin/bandit --ini .bandit -q

clean:
	rm -rf $(VENV) .venv-openai2 .venv-agents db.sqlite3 staticfiles
