"""Queries of idempotent replays: a claimed `Idempotency-Key`, and the answer kept for it."""

from __future__ import annotations

from typing import Any

from peewee import IntegrityError

from app.store.models import IdempotentReplay, db


def _where(actor: str, key: str) -> Any:
    return (IdempotentReplay.actor == actor) & (IdempotentReplay.key == key)


def live_replay(actor: str, key: str, now: int) -> tuple[str, int | None, str | None] | None:
    """The body digest, status and sealed answer kept for this key (None: none, or lapsed)."""
    return (
        IdempotentReplay.select(
            IdempotentReplay.body_sha256, IdempotentReplay.status, IdempotentReplay.sealed
        )
        .where(_where(actor, key) & (IdempotentReplay.expires_at > now))
        .tuples()
        .first()
    )


def claim(actor: str, key: str, digest: str, until: int) -> bool:
    """Claim the key (dropping a lapsed claim); False if another request holds it."""
    IdempotentReplay.delete().where(_where(actor, key)).execute()
    try:
        with db.atomic():  # a savepoint: the transaction goes on after a refusal
            IdempotentReplay.insert(
                actor=actor, key=key, body_sha256=digest, expires_at=until
            ).execute()
    except IntegrityError:
        return False
    return True


def keep_answer(actor: str, key: str, status: int, sealed: str, until: int) -> None:
    IdempotentReplay.update(status=status, sealed=sealed, expires_at=until).where(
        _where(actor, key)
    ).execute()


def release(actor: str, key: str) -> None:
    """Let go of a claim whose request failed: its retry runs anew."""
    IdempotentReplay.delete().where(
        _where(actor, key) & IdempotentReplay.status.is_null()
    ).execute()


def forget_lapsed(now: float) -> int:
    """Delete replays (and claims) kept past their time."""
    return IdempotentReplay.delete().where(IdempotentReplay.expires_at <= now).execute()
