# syntax=docker/dockerfile:1
# One image for every Shoal service. The entry point is the `shoal` command; the service is
# chosen by the arguments, as the Helm chart does:
#
#   docker build -t shoal:0.1.0 .
#   docker run shoal:0.1.0 serve --service ingest     # or analysis, sampler, labeling_bridge, console
#   docker run -p 50051:50051 -p 8080:8080 shoal:0.1.0  # all four and the console on embedded stores
#
# Dependencies are installed at the exact versions of requirements.lock (regenerate it with
# scripts/lock_requirements.py), then Shoal's own wheel without resolving anything again.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- build: a virtual environment with the locked dependencies and the shoal wheel -----------
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/shoal
WORKDIR /src
# the dependencies first: this layer is reused while only Shoal's code changes
COPY requirements.lock ./
RUN /opt/shoal/bin/pip install -r requirements.lock
COPY pyproject.toml README.md ./
COPY services ./services
RUN /opt/shoal/bin/pip wheel --no-deps --wheel-dir /wheels . \
 && /opt/shoal/bin/pip install --no-deps /wheels/shoal-*.whl \
 && /opt/shoal/bin/pip check \
 && /opt/shoal/bin/shoal --help >/dev/null \
 && /opt/shoal/bin/python -c "import importlib.resources as r; \
assert r.files('shoal.console').joinpath('static/index.html').is_file(), 'the console web app is not in the wheel'"
# The jobs' compiled kernels, compiled now into a cache the services copy into NUMBA_CACHE_DIR as they start, so
# that no pod compiles them (numba keys the cache by CPU model: on another model they compile once, on a
# background thread, as the service starts).
RUN NUMBA_CACHE_DIR=/opt/shoal/numba-cache /opt/shoal/bin/shoal warm-up

# --- runtime: the environment only, as an unprivileged user -----------------------------------
FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="shoal" \
      org.opencontainers.image.description="Shoal's gRPC services (ingest, analysis, sampler, labeling bridge) and web console" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --system --gid 10001 shoal \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /var/lib/shoal \
      --shell /usr/sbin/nologin shoal \
 && mkdir -p /var/lib/shoal \
 && chown 10001:10001 /var/lib/shoal
COPY --from=builder /opt/shoal /opt/shoal
# The root filesystem may be read-only (the chart mounts /tmp and /var/lib/shoal as emptyDirs):
# numba's compiled-function cache (seeded from the one compiled at build) and anything that writes under HOME go
# to /tmp.
ENV PATH=/opt/shoal/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    NUMBA_CACHE_DIR=/tmp/numba \
    SHOAL_NUMBA_CACHE_SEED=/opt/shoal/numba-cache \
    SHOAL_HOST=0.0.0.0 \
    SHOAL_DATA_DIR=/var/lib/shoal
WORKDIR /var/lib/shoal
USER 10001:10001
# gRPC, Prometheus metrics (SHOAL_METRICS_PORT), the labeling bridge's webhooks, the console
EXPOSE 50051 9090 8090 8080
ENTRYPOINT ["shoal"]
CMD ["serve"]
