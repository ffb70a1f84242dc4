# syntax=docker/dockerfile:1
# An exact tag in both stages (README, "Security": a release pins its digest, python:…@sha256:…).
# Build stage: compile wheels into a virtualenv.
FROM python:3.11.14-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
# The lock pins every dependency with its hashes: nothing unpinned or altered gets in (docs/security.md).
COPY requirements/base.lock /tmp/base.lock
RUN /opt/venv/bin/pip install --require-hashes -r /tmp/base.lock

# Run stage: the virtualenv and the code, owned by root and read-only to the unprivileged user that runs
# them (a compromised process cannot rewrite the code it runs); it writes only /app/var (the usage spool).
FROM python:3.11.14-slim-bookworm
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    SQLITE_PATH=/app/var/db.sqlite3 \
    XROUTER_HOST=0.0.0.0 \
    XROUTER_PORT=8000 \
    XROUTER_WORKERS=2
RUN useradd --create-home --uid 10001 xrouter
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
# No --chown: root's files (mode 644/755 from the context) are read-only to uid 10001. collectstatic loads the
# settings, which in development generate an ID-token signing key: into /tmp and deleted, never into the image.
COPY . /app
RUN XROUTER_OIDC_RSA_KEY_FILE=/tmp/build-oidc-key.pem python manage.py collectstatic --noinput \
 && rm -f /tmp/build-oidc-key.pem \
 && mkdir -p /app/var \
 && chown xrouter:xrouter /app/var
USER 10001
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import urllib.request,os; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('XROUTER_PORT', '8000'), timeout=2)"]
# SIGTERM: uvicorn stops accepting, lets open streams finish (XROUTER_SHUTDOWN_GRACE, 30 s), flushes
# usage (to Redis, or to the disk spool within a few seconds when Redis cannot take it), then stops the
# usage writer (10 s at most). A Dockerfile cannot set how long the engine waits before SIGKILL, and
# Docker's default is 10 s: run with `docker run --stop-timeout 45` (compose: `stop_grace_period: 45s`;
# Kubernetes: `terminationGracePeriodSeconds: 45`), i.e. XROUTER_SHUTDOWN_GRACE + 15 s.
STOPSIGNAL SIGTERM
CMD ["python", "manage.py", "serve"]
