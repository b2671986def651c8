"""`gateway` console script: serve with gunicorn (gevent workers) using gunicorn.conf.py."""

from __future__ import annotations

import argparse
import os
import sys

from app.config import ConfigError, load_settings

CONF_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "gunicorn.conf.py")


def main(argv: list[str] | None = None) -> None:
    """Check the configuration, then run gunicorn on `wsgi:app`."""
    parser = argparse.ArgumentParser(prog="gateway", description=__doc__)
    parser.add_argument("--config", help="YAML configuration file (or GATEWAY_CONFIG)")
    parser.add_argument("--dev", action="store_true", help="run the Flask development server")
    args = parser.parse_args(argv)
    if args.config:
        os.environ["GATEWAY_CONFIG"] = args.config
    try:
        settings = load_settings()
    except ConfigError as exc:
        sys.exit(f"gateway: invalid configuration: {exc}")
    if args.dev:
        from app import create_app

        create_app(settings=settings).run(host=settings.host, port=settings.port, threaded=True)
        return
    from gunicorn.app.wsgiapp import run

    sys.argv = ["gunicorn", "-c", CONF_FILE, "app.wsgi:app"]
    run()
