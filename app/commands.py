"""The maintenance commands (`gateway migrate`, `sweep`, `backup`): open the store, work, exit.

They run beside a serving gateway or with it stopped, so each takes the
locks the workers take. Each returns the process's exit status and prints
what it did: 0 done, 1 `migrate --check` found migrations pending, 2 it
could not be done (the message says why).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from app.config import DEFAULT_SWEEP_INTERVAL, Settings
from app.store import bind, db, migrations, prepare_schema, retention
from app.store.backup import BackupError, backup_sqlite


class CommandError(RuntimeError):
    """The command cannot be done as asked."""


def run(command: str, args: dict[str, Any], settings: Settings) -> int:
    """Run `command` on the configured store; return the exit status."""
    try:
        return COMMANDS[command](args, settings)
    except (migrations.SchemaError, BackupError, CommandError) as exc:
        print(f"gateway {command}: {exc}", file=sys.stderr)
        return 2


def migrate(args: dict[str, Any], settings: Settings) -> int:
    """Apply pending migrations; with `check`, only tell whether any are pending (exit 1)."""
    bind(settings)
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


def sweep(args: dict[str, Any], settings: Settings) -> int:
    """Sweep the store once (unless a worker is sweeping now); `vacuum` rewrites SQLite's file."""
    from app.services.sweep import sweep_if_due
    from app.store.blobs import BlobStore

    bind(settings)
    prepare_schema(settings.store.migrate_on_start)
    blobs = BlobStore(settings.files.base_dir, settings.files.max_bytes)
    report = sweep_if_due(settings.store.sweep_interval or DEFAULT_SWEEP_INTERVAL, blobs)
    if report is None:
        print("sweep: another gateway is sweeping the store now; nothing done")
    else:
        print("swept:", " ".join(f"{key}={value}" for key, value in asdict(report).items()))
    if args.get("vacuum"):
        _vacuum(settings)
    return 0


def _vacuum(settings: Settings) -> None:
    if settings.store.type != "sqlite":
        print("vacuum: PostgreSQL reclaims space itself (autovacuum); nothing done")
        return
    with db.connection_context():
        retention.vacuum()
        print("vacuum: rewritten; freed pages now go back to the file system as sweeps free them")


def backup(args: dict[str, Any], settings: Settings) -> int:
    """Copy the live SQLite store to `file`, consistent while it serves (nothing is made:
    the store is read with sqlite3 alone)."""
    if settings.store.type != "sqlite":
        raise CommandError(
            f"backs up a SQLite store; for {settings.store.type} use its own tools "
            "(PostgreSQL: pg_dump, see docs/DEPLOYMENT.md)"
        )
    size = backup_sqlite(settings.store.sqlite_path, args["file"])
    print(f"backup: {args['file']} ({size} bytes)")
    return 0


COMMANDS: dict[str, Callable[[dict[str, Any], Settings], int]] = {
    "migrate": migrate,
    "sweep": sweep,
    "backup": backup,
}
