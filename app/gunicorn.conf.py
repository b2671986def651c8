"""gunicorn settings for the gateway: gevent workers, long streams, masked logs.

Loaded by path (root gunicorn.conf.py, or the `gateway` command), never imported.

This file runs in gunicorn's master, before gevent patches the standard
library in the workers: it imports the standard library and the gateway's
settings (app.config: YAML and marshmallow, nothing that holds ssl).
Every value can be changed by the environment (or by GUNICORN_CMD_ARGS /
the command line, which win).
"""

import os
import shutil
import tempfile

from app.config import load_settings, open_relay

# Where the gateway listens, as its settings say (HOST_PORT, or the YAML
# file's host_port): an invalid value stops the start here, naming it.
# Without HOST_PORT, GATEWAY_BIND may give a bind of any kind (unix:PATH).
_settings = load_settings()
_server = _settings.server
_host = f"[{_server.host}]" if ":" in _server.host else _server.host  # IPv6 in brackets
if os.environ.get("GATEWAY_BIND") and not os.environ.get("HOST_PORT"):
    bind = os.environ["GATEWAY_BIND"]
else:
    bind = f"{_host}:{_server.port}"

# gunicorn's gevent worker, closing idle keep-alive connections when it stops.
worker_class = "app.worker.GatewayWorker"


def _number(name, default):
    """An integer from the environment; unset or empty (as compose passes it) is the default."""
    return int(os.environ.get(name) or default)


workers = _number("GATEWAY_WORKERS", min(2 * (os.cpu_count() or 1) + 1, 8))
worker_connections = _number("GATEWAY_WORKER_CONNECTIONS", 1000)
# gevent workers heartbeat from their own greenlet, so a long stream never
# trips this; it only catches a worker whose hub is truly stuck.
timeout = _number("GATEWAY_WORKER_TIMEOUT", 120)
graceful_timeout = _number("GATEWAY_GRACEFUL_TIMEOUT", 60)
keepalive = _number("GATEWAY_KEEPALIVE", 75)
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
# GATEWAY_ACCESS_LOG="" turns the access log off (the request_completed line remains).
accesslog = os.environ.get("GATEWAY_ACCESS_LOG", "-") or None
errorlog = "-"
# No headers in the access log: it never sees the Authorization header.
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms pid=%(p)s'


# gunicorn's control socket (`gunicornc`: stop, reload, scale) would be made in
# $XDG_RUNTIME_DIR or ~/.gunicorn (the image's /data volume), one path for every
# gunicorn of the user. Off unless GATEWAY_CONTROL_SOCKET names where it goes.
control_socket_disable = not os.environ.get("GATEWAY_CONTROL_SOCKET")
if not control_socket_disable:
    control_socket = os.environ["GATEWAY_CONTROL_SOCKET"]

_made_metrics_dir = None  # a directory this start made, removed when it ends


def on_starting(server):
    """Before any worker exists, set what they inherit through the environment.

    How many workers share the store, and how many connections each serves
    (its backend pools keep as many). Nothing here runs on import: loading
    this file (a test, a HUP) changes nothing.
    """
    global _made_metrics_dir
    # GUNICORN_CMD_ARGS or the command line may bind elsewhere than the settings say.
    hosts = [a if a.startswith("unix:") else a.rpartition(":")[0] for a in server.cfg.bind]
    problem = open_relay(_settings, hosts)
    if problem:
        server.log.error("refusing to start: %s", problem)
        raise SystemExit(1)
    os.environ["GATEWAY_WORKERS"] = str(server.cfg.workers)
    os.environ["GATEWAY_WORKER_CONNECTIONS"] = str(server.cfg.worker_connections)
    # A numeric backend address needs no lookup, but gevent's default resolver
    # sends every one through its thread pool (and the GIL): this one answers
    # them in place and passes names on to the pool. An operator's own
    # GEVENT_RESOLVER wins.
    os.environ.setdefault("GEVENT_RESOLVER", "app.backends.resolver.Resolver")
    # Prometheus multiprocess mode: every worker writes its metrics here and
    # /metrics adds them up. The directory must exist before workers start,
    # and starts empty.
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        _made_metrics_dir = tempfile.mkdtemp(prefix="gateway-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = _made_metrics_dir
    metrics_dir = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    os.makedirs(metrics_dir, exist_ok=True)
    for name in os.listdir(metrics_dir):
        if name.endswith(".db"):
            os.remove(os.path.join(metrics_dir, name))


def on_exit(server):
    """Remove the metrics directory this start made (one the operator named stays)."""
    if _made_metrics_dir:
        shutil.rmtree(_made_metrics_dir, ignore_errors=True)


def post_worker_init(worker):
    """Start the worker's jobs beside its requests (a lease lets one worker sweep the store)."""
    from app import start_jobs

    start_jobs(worker.wsgi)


def child_exit(server, worker):
    """Drop a dead worker's live gauges (active streams, circuit state)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
