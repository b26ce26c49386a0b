# testgate control plane: `docker build -t testgate .` then see deploy/compose.yaml and docs/deployment.md.
#
# Runs as UID 1000 on a read-only root filesystem: everything it writes goes to /data (a volume: the
# embedded database, generated keys, workspaces, artifacts) and /tmp (mount a tmpfs).

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
# Every dependency ships manylinux wheels, so the slim image needs no compiler.
RUN python -m venv /opt/testgate && /opt/testgate/bin/pip install .

FROM python:3.11-slim
ENV PATH=/opt/testgate/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/data \
    TESTGATE_DATA_DIR=/data \
    TESTGATE_HOST=0.0.0.0 \
    TESTGATE_PORT=8080 \
    TESTGATE_LOG_FORMAT=json
# git: workflows may check out repositories; tini: signals reach uvicorn and step process groups are reaped.
RUN apt-get update \
    && apt-get install --yes --no-install-recommends git tini \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 1000 testgate \
    && useradd --uid 1000 --gid 1000 --home-dir /data --no-create-home --shell /usr/sbin/nologin testgate \
    && install --directory --owner 1000 --group 1000 --mode 0700 /data
COPY --from=build /opt/testgate /opt/testgate
USER 1000:1000
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8080
# Liveness only (no database check: that is /readyz). curl is not in the image; Python is. The probe talks to
# this container's own listener, so with TLS on it skips certificate verification (the name would not match).
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 CMD ["python", "-c", "import os, ssl, urllib.request as r; s = 'https' if os.environ.get('TESTGATE_HTTP__TLS_CERT') else 'http'; r.urlopen(f\"{s}://127.0.0.1:{os.environ.get('TESTGATE_PORT', '8080')}/healthz\", timeout=4, context=ssl._create_unverified_context())"]
ENTRYPOINT ["tini", "--", "testgate"]
CMD ["serve"]
