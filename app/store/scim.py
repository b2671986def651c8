"""Users provisioned over SCIM: rows in, plain dataclasses out.

A user deleted over SCIM stays as a deprovisioned row (`deleted_at`), out
of every SCIM answer, so that sign-ins by its name are still refused
rather than judged by their claims again; provisioning the name anew
replaces it.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, fields, replace
from typing import Any

from peewee import IntegrityError

from app.compact_json import dumps
from app.errors import Conflict
from app.store.models import ScimUser, db

FIELDS = ("user_name", "display_name", "external_id", "active", "role", "tenant_id", "key_prefixes")


@dataclass(frozen=True)
class UserRow:
    id: str
    user_name: str
    display_name: str | None
    external_id: str | None
    active: bool
    role: str
    tenant_id: str | None
    key_prefixes: tuple[str, ...]
    created_at: int
    updated_at: int
    version: int
    deleted_at: int | None = None


def _row(user: ScimUser) -> UserRow:
    values = {field.name: getattr(user, field.name) for field in fields(UserRow)}
    values["key_prefixes"] = tuple(json.loads(user.key_prefixes))
    values["active"] = bool(user.active)
    return UserRow(**values)


def name_key(user_name: str) -> str:
    """What makes two userNames the same one: case does not count (RFC 7643, 4.1.1)."""
    return user_name.casefold()


def _columns(values: dict[str, Any]) -> dict[str, Any]:
    columns = {name: values[name] for name in FIELDS if name in values}
    if "user_name" in columns:
        columns["name_key"] = name_key(columns["user_name"])
    if "key_prefixes" in columns:
        columns["key_prefixes"] = dumps(list(columns["key_prefixes"]))
    return columns


def get_user(user_id: str) -> UserRow | None:
    """A provisioned user (None: unknown, or deleted)."""
    user = ScimUser.get_or_none((ScimUser.id == user_id) & ScimUser.deleted_at.is_null())
    return _row(user) if user else None


def user_named(user_name: str) -> UserRow | None:
    """The user of a name, deprovisioned ones too (userName is case-insensitive, RFC 7643)."""
    user = ScimUser.get_or_none(ScimUser.name_key == name_key(user_name))
    return _row(user) if user else None


def _check_name_free(user_name: str, user_id: str) -> None:
    """userName is unique without regard to case; a deprovisioned user's name is taken anew."""
    other = user_named(user_name)
    if other is not None and other.deleted_at is not None:
        ScimUser.delete().where(ScimUser.id == other.id).execute()
    elif other is not None and other.id != user_id:
        raise Conflict(f"A user named '{other.user_name}' exists.", code="uniqueness")


def insert_user(user: UserRow) -> UserRow:
    _check_name_free(user.user_name, user.id)
    try:
        with db.atomic():
            ScimUser.insert(
                id=user.id,
                created_at=user.created_at,
                updated_at=user.updated_at,
                version=1,
                **_columns(user.__dict__),
            ).execute()
    except IntegrityError:
        raise Conflict(f"A user named '{user.user_name}' exists.", code="uniqueness") from None
    return user


def update_user(user: UserRow, changes: dict[str, Any]) -> UserRow:
    now = int(time.time())
    after = replace(user, **changes, updated_at=now, version=user.version + 1)
    _check_name_free(after.user_name, user.id)
    try:
        with db.atomic():
            ScimUser.update(updated_at=now, version=after.version, **_columns(changes)).where(
                ScimUser.id == user.id
            ).execute()
    except IntegrityError:
        raise Conflict(f"A user named '{after.user_name}' exists.", code="uniqueness") from None
    return after


def delete_user(user_id: str) -> bool:
    """Deprovision: the user leaves SCIM's answers, and sign-ins by its name stay refused."""
    now = int(time.time())
    deprovisioned = (
        ScimUser.update(deleted_at=now, active=False, updated_at=now, version=ScimUser.version + 1)
        .where((ScimUser.id == user_id) & ScimUser.deleted_at.is_null())
        .execute()
    )
    return bool(deprovisioned)


def page_users(user_name: str | None, start: int, count: int) -> tuple[list[UserRow], int]:
    """Users from the 1-based `start`, at most `count`, and how many match in all."""
    query = ScimUser.select().where(ScimUser.deleted_at.is_null())
    if user_name is not None:
        query = query.where(ScimUser.name_key == name_key(user_name))
    total = query.count()
    rows = query.order_by(ScimUser.created_at, ScimUser.id).offset(start - 1).limit(count)
    return [_row(user) for user in rows], total
