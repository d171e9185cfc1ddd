# syntax=docker/dockerfile:1
# streamproc: the worker, the Alertmanager forwarder and every other `streamproc` command.
#
#   docker build -t streamproc .
#   docker run --rm streamproc --help
#   docker run -v ./monitor.toml:/etc/streamproc/monitor.toml:ro streamproc   # a worker
#
# Two stages: the builder installs the wheel (with its dependencies, all binary wheels:
# confluent-kafka bundles librdkafka) into a virtualenv; the runtime copies only that
# virtualenv and runs as an unprivileged user. The base is pinned to a patch release;
# to pin its digest too, append the output of
# `docker buildx imagetools inspect python:3.11.13-slim-bookworm --format '{{.Manifest.Digest}}'`
# as `@sha256:...` (or pass --build-arg PYTHON_IMAGE=...@sha256:...).
ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/streamproc
WORKDIR /src
COPY pyproject.toml README.md ./
COPY schemas ./schemas
COPY streamproc ./streamproc
# A regular (not editable) install: the JSON Schemas ship as package data
# (streamproc/schemas), checked here from outside the source tree. [registry]: Avro,
# Protobuf and JSON Schema topics through a schema registry ([mapping] format).
RUN /opt/streamproc/bin/pip install ".[registry]" \
    && cd / \
    && /opt/streamproc/bin/python -I -c "from streamproc.contracts import SCHEMA_DIR, schema_names; assert 'site-packages' in str(SCHEMA_DIR) and 'alert' in schema_names(), SCHEMA_DIR" \
    && /opt/streamproc/bin/streamproc --version

FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="streamproc" \
      org.opencontainers.image.description="Kafka-native monitoring for ML models in production" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/streamproc/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN groupadd --system --gid 10001 streamproc \
    && useradd --system --uid 10001 --gid streamproc --home-dir /var/lib/streamproc \
       --no-create-home --shell /usr/sbin/nologin streamproc \
    && mkdir -p /etc/streamproc /var/lib/streamproc \
    && chown streamproc:streamproc /var/lib/streamproc
COPY --from=builder /opt/streamproc /opt/streamproc
WORKDIR /var/lib/streamproc
USER streamproc:streamproc
# 9464: /metrics of the worker (and of `alerts forward --metrics-port 9464`).
EXPOSE 9464
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as u; u.urlopen('http://127.0.0.1:%s/metrics' % os.environ.get('STREAMPROC_METRICS_PORT', '9464'), timeout=4)"]
ENTRYPOINT ["streamproc"]
CMD ["worker", "--config", "/etc/streamproc/monitor.toml"]
