# The Sieve image: the package and its runtime dependencies (no dev extras) in a virtualenv built at image build
# time, run by an unprivileged user. docker-compose.yml builds it for the demo service (`docker compose build`);
# the default command is that service's `sieve demo --serve`.
#
#   docker build -t sieve:local .
#   docker run --rm sieve:local --help
#
# Without a DSN (SIEVE_PG_DSN) `sieve demo` starts the embedded Postgres of the pgserver wheel. Postgres refuses to
# run as root; as root, pgserver works around that by adding a system user and widening the permissions of its
# binaries and data directory. Running unprivileged (USER below) needs neither.
# tests/stack/test_dockerfile.py checks this file without a Docker daemon.

# -- build: `pip install .` into /opt/sieve (the wheel is built here, with hatchling, from the copied sources) --
FROM python:3.11-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/sieve
WORKDIR /src
# Exactly what the wheel is built from (pyproject.toml: packages, readme and the force-included sql/ and dashboards).
COPY pyproject.toml README.md ./
COPY sql ./sql
COPY dashboards/grafana ./dashboards/grafana
COPY dashboards/provisioning ./dashboards/provisioning
COPY collectors ./collectors
COPY pipeline ./pipeline
# Runtime dependencies only: no extras (the dev extras are tests, linters and the dashboard generator).
RUN /opt/sieve/bin/pip install . && /opt/sieve/bin/sieve --help >/dev/null

# -- runtime: the same base (the virtualenv's interpreter path must match), no build tools, no pip install --
FROM python:3.11-slim-bookworm
ENV PATH=/opt/sieve/bin:$PATH \
    PYTHONUNBUFFERED=1
# A fixed uid so a bind-mounted or pre-created volume can be chowned to it. Its home is the working directory:
# .sieve/ (reports, spans, the embedded Postgres' data) is written there; compose mounts a volume on it.
RUN useradd --system --uid 10001 --user-group --create-home --home-dir /var/lib/sieve --shell /usr/sbin/nologin sieve
COPY --from=build /opt/sieve /opt/sieve
USER sieve
WORKDIR /var/lib/sieve
# The demo's WebSocket service and the metrics / health endpoint (settings service.port, prometheus.port).
EXPOSE 8079 9464
# 200 only when every component is ready (pipeline/http.py). Python's urllib, so the image needs no curl; an HTTP
# error status or a refused connection raises and exits non-zero. The start period covers migrations and seeding.
HEALTHCHECK --interval=10s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9464/readyz', timeout=3)"]
# `docker stop` sends SIGTERM: sieve handles it as Ctrl-C (the service closes, held traces are decided, the
# exporters and the sink flush, the embedded Postgres stops) and exits 143, even as PID 1.
ENTRYPOINT ["sieve"]
CMD ["demo", "--serve"]
