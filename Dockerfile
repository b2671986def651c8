# The Responses API gateway: gunicorn with gevent workers, SQLite in /data.
#
#   docker build -t responses-gateway .
#   docker run -d --name gateway -p 8080:8080 -v gateway-data:/data \
#     -e OPENAI_API_ENDPOINT=http://model-server:8000/v1 \
#     -e SESSION_STORE_TYPE=sqlite -e SESSION_STORE_DSN=/data/responses.db \
#     --stop-timeout 70 responses-gateway
#
# Arguments after the image name go to gunicorn (e.g. --workers 4).
# See docs/DEPLOYMENT.md.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /opt/responses-gateway

# The package and its dependencies (wheels: no compiler needed on slim).
COPY pyproject.toml setup.cfg README.md ./
COPY app ./app
RUN pip install . && rm -rf app build ./*.egg-info

# gunicorn's settings and the WSGI entry point run from the working directory.
COPY gunicorn.conf.py wsgi.py ./

# A fixed non-root uid/gid (numeric in USER, for runAsNonRoot checks), so a
# bind-mounted /data can be chown'ed to it.
RUN groupadd --system --gid 10001 gateway \
    && useradd --system --uid 10001 --gid gateway --home-dir /data --no-create-home \
        --shell /usr/sbin/nologin gateway \
    && mkdir -p /data \
    && chown gateway:gateway /data

# Listen on every interface of the container; the store is the SQLite file on
# the volume, uploaded files' bytes beside it; Prometheus multiprocess files of all workers go to /tmp.
ENV HOST_PORT=0.0.0.0:8080 \
    SESSION_STORE_TYPE=sqlite \
    SESSION_STORE_DSN=/data/responses.db \
    FILE_STORE_BASE_DIR=/data/files \
    PROMETHEUS_MULTIPROC_DIR=/tmp/gateway-metrics

VOLUME /data
EXPOSE 8080
USER 10001:10001

# /health answers 200 while a backend is usable, 503 otherwise; urllib raises
# on both a refused connection and a 503 (no curl in the image).
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; port = os.environ.get('HOST_PORT', '8080').rpartition(':')[2]; urllib.request.urlopen(f'http://127.0.0.1:{port}/health', timeout=4)"]

# gunicorn is PID 1: SIGTERM (docker stop) lets in-flight streams finish for
# up to GATEWAY_GRACEFUL_TIMEOUT (60 s), hence --stop-timeout 70 above.
STOPSIGNAL SIGTERM
ENTRYPOINT ["gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"]
