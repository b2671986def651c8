"""The store's maintenance commands (`gateway migrate`, …): each opens the store, works, exits.

They run outside the app, beside a serving gateway or with it stopped, so
each takes the same locks the workers take. Each returns the process's exit
status and prints what it did.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from app.config import Settings
from app.store import migrations, open_database
from app.store.models import db


def run(command: str, args: dict[str, Any], settings: Settings) -> int:
    """Run `command` on the configured store; return the exit status."""
    database, _keeper = open_database(settings)
    db.initialize(database)
    try:
        return COMMANDS[command](args)
    except migrations.SchemaError as exc:
        print(f"gateway {command}: {exc}", file=sys.stderr)
        return 2


def migrate(args: dict[str, Any]) -> int:
    """Apply pending migrations; with `check`, only tell whether any are pending (exit 1)."""
    with db.connection_context():
        pending = migrations.pending()
    for migration in pending:
        print(f"pending: {migration.number} {migration.name}", flush=True)
    if args.get("check"):
        print(f"schema: {migrations.LATEST - len(pending)} of {migrations.LATEST} applied")
        return 1 if pending else 0
    for migration in migrations.migrate():
        print(f"applied: {migration.number} {migration.name}")
    print(f"schema: up to date ({migrations.LATEST})")
    return 0


COMMANDS: dict[str, Callable[[dict[str, Any]], int]] = {"migrate": migrate}
