"""The gateway application: `create_app` wires config, store, backends and API.

Importing the package imports nothing else. The `gateway` command and
gunicorn's master import `app.cli` and `app.config` before any worker
exists; had they pulled in requests or urllib3 (and with them ssl's
classes), gevent could no longer patch ssl in the workers, and every call
to an https backend would fail. So the factory imports its parts itself.
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flask import Flask

    from app.config import Settings


# Each has `init_app(app, settings)`, called in this order: each may use what
# the ones before it made (the services' context takes the backends; the API
# serves all of them). An auth mode, tools or an ext_proc process plug in here.
EXTENSIONS = ("app.store", "app.backends", "app.services", "app.auth", "app.observe", "app.api")


def create_app(overrides: dict[str, Any] | None = None, settings: Settings | None = None) -> Flask:
    """Build the app from settings (defaults <- YAML <- env <- `overrides`)."""
    from flask import Flask

    from app.config import load_settings
    from app.logs import configure_logging

    settings = settings or load_settings(overrides)
    configure_logging(settings.server.log_level, settings.server.json_logs)
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.server.max_body_bytes
    app.json.ensure_ascii = False
    app.json.sort_keys = False
    app.extensions["settings"] = settings
    for name in EXTENSIONS:
        importlib.import_module(name).init_app(app, settings)
    logging.getLogger(__name__).info(
        "gateway ready: store=%s backends=%s",
        settings.store.type,
        ", ".join(f"{b.name}={b.base_url}" for b in settings.backends),
    )
    return app


def start_jobs(app: Any) -> None:
    """Start what a serving process does beside its requests (the store's sweeper, the
    vector stores' ingester).

    gunicorn.conf.py calls it for whatever app it serves: another (the
    benchmark's floor app) has no jobs.
    """
    settings = getattr(app, "extensions", {}).get("settings")
    if settings is None:
        return
    from app.services.sweep import start_sweeping

    services = app.extensions["services"]
    app.extensions["sweeper"] = start_sweeping(settings.store.sweep_interval, services.blobs)
    services.ingester.start()  # files a worker left half-ingested are taken up again
