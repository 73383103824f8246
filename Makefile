# The two commands of a new user: `make demo` and `make test`. Both set everything up first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell sha256sum pyproject.toml | cut -c1-12)

.PHONY: lint demo test test-unit test-integration test-console venv kernels kafka-jars s3proxy label-studio label-studio-start sed-eval nuscenes-devkit helm-tools kubernetes chromium firefox ghz bench-load protos check-protos docs clean

venv: $(STAMP)

# Installed with uv (scripts/ensure-uv.sh, once per machine): parallel downloads and a cache of its own make a
# fresh clone's venv about 17 s on 2 cores, against about 50 s with pip. Every module's bytecode is compiled as it
# installs, on purpose: where PYTHONDONTWRITEBYTECODE is set (as on the CI machines) nothing is compiled after
# that, and every test process would compile the modules it imports again (a make test 20 % slower, measured).
# The project's own modules (installed editable) are compiled too: 0.23 CPU-s less at each service process's start.
# --seed puts pip in the venv too, for those who use it (scripts/fetch-helm.sh does).
$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is needed"' \
	  || { echo "make: Python 3.11 or newer is needed (set PYTHON=/path/to/python3.11)"; exit 1; }
	uv="$$(PYTHON=$(PYTHON) bash scripts/ensure-uv.sh)" \
	  && "$$uv" venv --quiet --seed --allow-existing --python $(PYTHON) $(VENV) \
	  && "$$uv" pip install --quiet --compile-bytecode --python $(BIN)/python -e '.[dev]'
	$(BIN)/python -m compileall -q -j 0 services tests
	@rm -f $(VENV)/.installed-*
	@touch $@

# The analysis jobs' numba kernels compiled into this venv's disk cache once, in the background while the rest of
# the set-up runs and the tests start (each test waits for them unless marked own_kernel_cache, tests/conftest.py):
# otherwise each test process compiles them again.
kernels: venv
	bash scripts/warm-kernels.sh start

# helm and kubectl for the chart checks (tests/unit/test_helm_chart.py), into .cache/helm-bin/
helm-tools: venv
	PYTHON=$(BIN)/python bash scripts/fetch-helm.sh

# etcd, the Kubernetes control plane and kwok, built once per machine from the Go module proxy into
# ~/.cache/shoal-tools (SHOAL_TOOLS_DIR): about 25 CPU-minutes the first time, seconds after
kubernetes:
	bash scripts/ensure-kubernetes.sh build

kafka-jars:
	bash scripts/ensure-java.sh
	bash scripts/fetch-kafka.sh

# S3Proxy, the S3-compatible server of the console's object-store tests, into .cache/s3proxy/libs/
s3proxy:
	bash scripts/ensure-java.sh
	bash scripts/fetch-s3proxy.sh

# Label Studio for the labeling bridge's integration tests, in its own venv under .cache/.
label-studio:
	PYTHON=$(PYTHON) bash scripts/ensure-label-studio.sh

# The same install started in the background, first: it needs only $(PYTHON), so it runs beside the venv's own
# install instead of after it. The label-studio target then waits for it (the script holds a lock while it
# installs) and reports a failure, installing again.
label-studio-start:
	@mkdir -p .cache
	@PYTHON=$(PYTHON) bash scripts/ensure-label-studio.sh > .cache/label-studio-start.log 2>&1 < /dev/null &

# sed_eval, the reference of the sound-event metrics' tests, in its own venv under .cache/ (about 10 s).
sed-eval:
	PYTHON=$(PYTHON) bash scripts/ensure-sed-eval.sh > /dev/null

# nuscenes-devkit, the reference of the cuboid metrics' tests, in its own venv under .cache/ (it needs numpy<2;
# about 50 s the first time).
nuscenes-devkit:
	PYTHON=$(PYTHON) bash scripts/ensure-nuscenes-devkit.sh > /dev/null

# Chromium for the console's browser tests (tests/console/), from Debian's packages.
chromium:
	bash scripts/ensure-chromium.sh

# Firefox ESR (Debian's packages) and geckodriver (built once with cargo into ~/.cache/shoal-tools/) for the
# console's tests in Firefox (tests/console/test_firefox.py).
firefox:
	bash scripts/ensure-firefox.sh

# ghz, the gRPC load tool of the load benchmark, built with Go into .cache/ghz-bin/
ghz:
	bash scripts/fetch-ghz.sh

# Load on a `shoal serve` process with 1, 8 and 32 clients (bench/load/bench_load.py); not part of `make test`.
bench-load: venv ghz
	$(BIN)/python -m bench.load.bench_load

demo: venv
	$(BIN)/shoal demo --out demo-out

# The tests run in TEST_WORKERS processes (pytest-xdist). A test file is one unit of work, so its module's
# server starts once; the tests needing the Milvus server (one per machine), Label Studio or Kafka all run in
# one process, so each of those starts once (tests/harness/parallel.py). Much of a test is waiting on a server or a
# browser, so three processes keep two cores busy. TEST_WORKERS=0 runs them in this process.
TEST_WORKERS ?= 3
PYTEST := $(BIN)/python -m pytest -v -n $(TEST_WORKERS) --dist loadgroup

test: label-studio-start venv kernels kafka-jars s3proxy label-studio sed-eval nuscenes-devkit helm-tools kubernetes chromium firefox lint
	$(PYTEST) tests

test-unit: venv helm-tools sed-eval nuscenes-devkit
	$(PYTEST) -m "not integration and not browser" tests

test-integration: label-studio-start venv kernels kafka-jars s3proxy label-studio helm-tools kubernetes
	$(PYTEST) -m integration tests

# The console in real headless Chromium and Firefox ESR (screenshots of each page under test-artifacts/console/).
test-console: venv chromium firefox
	$(PYTEST) -m browser tests

protos: venv
	$(BIN)/python scripts/gen_protos.py

check-protos: venv
	$(BIN)/python scripts/gen_protos.py --check

# The generated reference under docs/reference/ (RPCs, tables, topics, metrics, settings, limits);
# tests/unit/test_docs.py fails when a committed page differs from what this writes.
docs: venv
	$(BIN)/python scripts/gen_reference.py

clean:
	rm -rf $(VENV) .cache demo-out shoal-data .pytest_cache

lint: venv
	$(BIN)/ruff check services tests scripts bench
	$(BIN)/ruff format --check services tests scripts bench
