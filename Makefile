# Two commands for a fresh machine with only Python 3 and git:
#   make demo   the example DAGs end to end on the bundled emulator
#   make test   ruff, mypy and the whole test suite
PYTHON ?= python3
AIRFLOW_VERSION ?= 3.3.2
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-airflow-$(AIRFLOW_VERSION)
PYTEST_ARGS ?=

.PHONY: demo test bench soak lint typecheck install system-deps clean docs

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check "apache-airflow==$(AIRFLOW_VERSION)" -e ".[dev]"
	# The editable build leaves <name>.egg-info in the checkout; with the checkout on sys.path (demo, pytest) Airflow
	# would find the provider's entry points twice ("Plugin ... already registered"). The venv's dist-info is enough.
	rm -rf airflow_provider_tencent_ci.egg-info
	rm -f $(VENV)/.installed-airflow-*
	touch $@

install: $(STAMP)

LINT_PATHS := airflow_provider_tencent_ci tests example_dags benchmarks demo

lint: $(STAMP)
	$(VENV)/bin/ruff check $(LINT_PATHS)
	$(VENV)/bin/ruff format --check $(LINT_PATHS)

typecheck: $(STAMP)
	$(VENV)/bin/mypy airflow_provider_tencent_ci

# Debian's chromium + chromium-driver for the browser tests (tests/ui): installed when missing and apt-get is usable
# as root; otherwise a note says what to install (the browser tests then skip, naming the missing binaries).
system-deps:
	@if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then \
		echo "system-deps: chromium and chromedriver present"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; \
	else \
		echo "system-deps: install Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)"; \
		echo "system-deps: until then the browser tests in tests/ui are skipped"; \
	fi

test: lint typecheck system-deps
	$(VENV)/bin/pytest $(PYTEST_ARGS)

# docs/constraints.md from the parameter descriptions (airflow_provider_tencent_ci/params); the catalogue of bad values.
docs: $(STAMP)
	$(PY) -m airflow_provider_tencent_ci.params.docs docs/constraints.md
	$(PY) -m tests.reliability.catalogue

demo: $(STAMP)
	$(PY) demo/run_demo.py

# The 10 s callback-listener soak (1,000 callbacks/s); `make test` runs a 2 s version of it.
soak: $(STAMP)
	TENCENT_CI_SOAK=1 $(VENV)/bin/pytest tests/reliability/test_callback_soak.py

# The benchmarks compare with the Amazon provider, installed ONLY in this separate environment (same Airflow).
BENCH_VENV ?= .venv-bench
BENCH_STAMP := $(BENCH_VENV)/.installed-airflow-$(AIRFLOW_VERSION)-amazon

$(BENCH_STAMP):
	test -x $(BENCH_VENV)/bin/python || $(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet --disable-pip-version-check "apache-airflow==$(AIRFLOW_VERSION)" apache-airflow-providers-amazon
	rm -f $(BENCH_VENV)/.installed-airflow-*
	touch $@

bench: $(STAMP) $(BENCH_STAMP)
	$(PY) benchmarks/run_all.py --amazon-python $(BENCH_VENV)/bin/python

clean:
	rm -rf .venv .venv-* .demo demo-output .mypy_cache .ruff_cache
