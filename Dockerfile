# syntax=docker/dockerfile:1
# The metadata gateway as a small non-root image:
#
#   docker build -t metadata-gateway .
#   docker run --rm -p 127.0.0.1:8080:8080 --stop-timeout 20 metadata-gateway serve --local-ivs
#
# Configure it with MG_* variables or a TOML file (MG_CONFIG=/path, or --config FILE).
# tests/test_deploy_docker.py builds the package from exactly the files copied below.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- build: install the project and its dependencies into a virtualenv --------------------
FROM ${PYTHON_IMAGE} AS build
# pip compiles the bytecode here: the runtime's root filesystem is read-only.
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
WORKDIR /src
RUN python -m venv /opt/venv
# The dependencies first, exactly as locked (versions and hashes), in a layer of their own that
# survives code changes; then the project alone, built by the setuptools pyproject.toml pins.
COPY requirements/runtime.lock ./requirements/
RUN /opt/venv/bin/pip install --require-hashes --no-deps -r requirements/runtime.lock
COPY pyproject.toml README.md ./
COPY metadata_gateway/ ./metadata_gateway/
RUN /opt/venv/bin/pip install --no-deps .

# ---- runtime: the virtualenv, a non-root user, nothing else ------------------------------
FROM ${PYTHON_IMAGE} AS runtime
RUN groupadd --system --gid 10001 gateway \
    && useradd --system --uid 10001 --gid gateway --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin gateway
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MG_HOST=0.0.0.0
USER 10001:10001
EXPOSE 8080
# /healthz answers while the event loop runs; MG_PORT if the port was moved.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('MG_PORT', '8080') + '/healthz', timeout=2)"]
# On SIGTERM the gateway refuses new cues, sends what it holds for up to drain_timeout
# (10 s by default), then exits 0: give `docker stop` / Kubernetes more than that.
STOPSIGNAL SIGTERM
ENTRYPOINT ["metadata-gateway"]
CMD ["serve"]
