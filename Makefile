# The two set-up commands: `make demo` and `make test`. Both build .venv from the lock on first use.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
export EVERGREEN_HOME ?= $(CURDIR)/.evergreen
export DAGSTER_HOME ?= $(EVERGREEN_HOME)/dagster
# uv reads the system trust store, so a machine behind its own CA bundle works as any other.
export UV_NATIVE_TLS := 1

.PHONY: install demo test lint format lock bench ui clean chromium podman servers grafana-schema

# --compile-bytecode: uv writes no .pyc by default, and where PYTHONDONTWRITEBYTECODE is set
# (this machine, CI) no process ever caches one, so every process compiled its imports anew
# (`import bentoml, evergreen.serving.runtime, catboost`: 4.4 s without, 1.2 s with; every
# bento replica, Dagster and Celery process pays it).
$(BIN)/.installed: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "uv==0.13.9"
	VIRTUAL_ENV=$(VENV) $(BIN)/uv pip sync --quiet --compile-bytecode requirements.lock
	VIRTUAL_ENV=$(VENV) $(BIN)/uv pip install --quiet --no-deps -e .
	touch $@

install: $(BIN)/.installed

demo: $(BIN)/.installed
	$(BIN)/evergreen demo

# Two workers (pytest-xdist), each file on one worker in its order (its module fixtures and
# order-dependent steps stay together); conftest puts the demo's file first, and
# --no-loadscope-reorder keeps it there (xdist otherwise hands out the files with the most tests
# first, so the demo's one long test started last and bounded the suite's wall).
TEST_WORKERS ?= 2
test: $(BIN)/.installed chromium podman servers
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

# The browser the UI test drives: Debian's chromium (Playwright never downloads a browser).
chromium:
	@[ -x /usr/bin/chromium ] || { SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium; }

# The container engine the container test drives: Debian's podman, set up as
# ../shared/reference/containers.md says (runc, no container rlimits). Installed when missing.
podman:
	@command -v podman >/dev/null && command -v debootstrap >/dev/null || { \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update && $$SUDO env DEBIAN_FRONTEND=noninteractive \
	  apt-get install -y podman buildah runc debootstrap; }
	@grep -qs 'runtime = "runc"' /etc/containers/containers.conf || { \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); $$SUDO mkdir -p /etc/containers && \
	  printf '[containers]\ndefault_ulimits = []\n[engine]\nruntime = "runc"\n' | \
	  $$SUDO tee /etc/containers/containers.conf >/dev/null; }

# The cluster profile's servers and `evergreen observe`'s, which tests start as throwaway
# children (never the services); iproute2's `ip netns` makes the cluster test's hosts.
servers:
	@[ -x /usr/lib/postgresql/15/bin/pg_ctl ] && \
	  command -v redis-server promtool prometheus prometheus-alertmanager ip >/dev/null || { \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); $$SUDO apt-get update && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
	  postgresql redis-server prometheus prometheus-alertmanager iproute2; }

lint: $(BIN)/.installed
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

format: $(BIN)/.installed
	$(BIN)/ruff check --fix . && $(BIN)/ruff format .

# Re-resolve the pinned lock after changing dependencies in pyproject.toml.
lock: $(BIN)/.installed
	$(BIN)/uv pip compile pyproject.toml --extra dev --extra cluster --python-version 3.11 -o requirements.lock

bench: $(BIN)/.installed
	$(BIN)/python bench/ingest.py

ui: $(BIN)/.installed
	$(BIN)/evergreen ui

# Regenerate the Grafana dashboard schema from Grafana's own types (npm); the file is committed,
# so tests validate offline. See evergreen/dashboards/grafana/README.md.
GRAFANA_SCHEMA := evergreen/dashboards/grafana/dashboard.schema.json
grafana-schema:
	@tmp=$$(mktemp -d) && cd $$tmp && npm pack --silent @grafana/schema@13.2.3 >/dev/null && \
	  tar xzf grafana-schema-13.2.3.tgz && \
	  npm install --silent --no-audit --no-fund typescript-json-schema@0.65.1 typescript@5.6.3 && \
	  node_modules/.bin/typescript-json-schema --required --strictNullChecks \
	    package/dist/types/raw/dashboard/x/types.gen.d.ts Dashboard -o $(CURDIR)/$(GRAFANA_SCHEMA) && \
	  rm -rf $$tmp

clean:
	rm -rf $(VENV) .evergreen
