"""`gateway` console script: serve with gunicorn (gevent workers), or look after the store.

`gateway` (or `gateway serve`) runs gunicorn with gunicorn.conf.py on
`wsgi:app`; `--dev` runs the Flask development server instead. The other
commands work on the configured store and exit: `migrate [--check]`,
`sweep [--vacuum]`, `backup FILE` (app/commands.py).

Serving imports nothing here but the configuration: gunicorn's master
must not hold requests or urllib3 (see app/__init__.py).
"""

from __future__ import annotations

import argparse
import os
import sys

from app.config import ConfigError, Settings, load_settings

DESCRIPTION = "Serve the Responses API gateway, or look after its store."
CONF_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "gunicorn.conf.py")


def main(argv: list[str] | None = None) -> None:
    """Check the configuration, then serve or run the store command asked for."""
    args = _parser().parse_args(argv)
    if args.config:
        os.environ["GATEWAY_CONFIG"] = args.config
    try:
        settings = load_settings()
    except ConfigError as exc:
        sys.exit(f"gateway: invalid configuration: {exc}")
    if args.command in (None, "serve"):
        _serve(settings, dev=args.dev)
    else:
        from app.commands import run

        sys.exit(run(args.command, vars(args), settings))


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", help="YAML configuration file (or GATEWAY_CONFIG)")
    parser = argparse.ArgumentParser(prog="gateway", description=DESCRIPTION, parents=[common])
    parser.add_argument("--dev", action="store_true", help="run the Flask development server")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_parser("serve", parents=[common], help="serve with gunicorn (the default)")
    migrate = commands.add_parser(
        "migrate", parents=[common], help="apply the store's pending schema migrations"
    )
    migrate.add_argument(
        "--check", action="store_true", help="change nothing; exit 1 if migrations are pending"
    )
    sweep = commands.add_parser(
        "sweep", parents=[common], help="remove what retention no longer keeps, once"
    )
    sweep.add_argument(
        "--vacuum", action="store_true", help="then rewrite the SQLite file without free pages"
    )
    backup = commands.add_parser(
        "backup", parents=[common], help="copy the live SQLite store to FILE"
    )
    backup.add_argument("file", metavar="FILE")
    return parser


def _serve(settings: Settings, dev: bool) -> None:
    if dev:
        from app import create_app, start_jobs

        app = create_app(settings=settings)
        start_jobs(app)
        app.run(host=settings.server.host, port=settings.server.port, threaded=True)
        return
    from gunicorn.app.wsgiapp import run

    sys.argv = ["gunicorn", "-c", CONF_FILE, "app.wsgi:app"]
    run()
