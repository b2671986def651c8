"""SCIM 2.0 Users (RFC 7643/7644): who may sign in as an admin, provisioned by an IdP.

A user is found by `userName` when an OIDC or proxy sign-in names it (the
token's `sub`, the proxy's user): `active: false` refuses the sign-in at
once, and the gateway extension's `role`, `tenant` (`*`: every tenant) and
`keyPrefixes`, when set, decide the scope instead of the sign-in's claims.
Lists take `filter=userName eq "…"` and `startIndex`/`count`; PATCH takes
`Operations` (add, replace, remove).
"""

from __future__ import annotations

import re
import time
from datetime import datetime, timezone
from typing import Any

from app.auth.admin import ROLES
from app.errors import InvalidRequest, NotFound, PermissionDenied
from app.protocol.ids import new_id
from app.services.admin import AdminContext, audit, commit_change
from app.store import scim
from app.store.scim import UserRow

CORE = "urn:ietf:params:scim:schemas:core:2.0:User"
EXTENSION = "urn:ietf:params:scim:schemas:extension:gateway:2.0:User"
LIST = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
MAX_COUNT = 500
MAX_START = 2**31 - 1
LENGTHS = {"user_name": 256, "display_name": 256, "external_id": 256, "tenant_id": 64}
FILTER = re.compile(r'\s*userName\s+eq\s+"((?:[^"\\]|\\.)*)"\s*', re.IGNORECASE)
SIMPLE = {
    "userName": "user_name",
    "displayName": "display_name",
    "externalId": "external_id",
    "active": "active",
}
EXTENDED = {"role": "role", "tenant": "tenant_id", "keyPrefixes": "key_prefixes"}


class ScimError(InvalidRequest):
    """A 400 with SCIM's `scimType`."""

    def __init__(self, message: str, scim_type: str, status: int = 400) -> None:
        super().__init__(message, code=scim_type, status=status)


def _iso(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).isoformat().replace("+00:00", "Z")


def resource(user: UserRow, base: str) -> dict[str, Any]:
    return {
        "schemas": [CORE, EXTENSION],
        "id": user.id,
        "userName": user.user_name,
        "displayName": user.display_name,
        "externalId": user.external_id,
        "active": user.active,
        EXTENSION: {
            "role": user.role or None,
            "tenant": user.tenant_id,
            "keyPrefixes": list(user.key_prefixes),
        },
        "meta": {
            "resourceType": "User",
            "created": _iso(user.created_at),
            "lastModified": _iso(user.updated_at),
            "version": f'W/"{user.version}"',
            "location": f"{base}/Users/{user.id}",
        },
    }


def _values(body: Any, partial: bool = False) -> dict[str, Any]:
    """The columns a User body sets, checked."""
    if not isinstance(body, dict):
        raise ScimError("The body must be a SCIM User object.", "invalidSyntax")
    values: dict[str, Any] = {}
    for attribute, column in SIMPLE.items():
        if attribute in body:
            values[column] = body[attribute]
    extension = body.get(EXTENSION) or {}
    if not isinstance(extension, dict):
        raise ScimError(f"'{EXTENSION}' must be an object.", "invalidSyntax")
    for attribute, column in EXTENDED.items():
        if attribute in extension:
            values[column] = extension[attribute]
    if not partial:
        values.setdefault("active", True)
        values.setdefault("role", "")
        values.setdefault("tenant_id", None)
        values.setdefault("key_prefixes", ())
        values.setdefault("display_name", None)
        values.setdefault("external_id", None)
    return _checked(values, partial)


def _checked(values: dict[str, Any], partial: bool) -> dict[str, Any]:
    name = values.get("user_name")
    if (not partial or "user_name" in values) and (not isinstance(name, str) or not name.strip()):
        raise ScimError("userName is required: a non-empty string.", "invalidValue")
    for column, limit in LENGTHS.items():
        value = values.get(column)
        if isinstance(value, str) and len(value) > limit:
            raise ScimError(f"{column} is longer than {limit} characters.", "invalidValue")
    if "active" in values and not isinstance(values["active"], bool):
        raise ScimError("active must be true or false.", "invalidValue")
    for column in ("display_name", "external_id"):
        if values.get(column) is not None and not isinstance(values[column], str):
            raise ScimError(f"{column} must be a string.", "invalidValue")
    if "role" in values:
        values["role"] = values["role"] or ""
        if values["role"] and values["role"] not in ROLES:
            raise ScimError(f"role must be one of {', '.join(ROLES)}.", "invalidValue")
    if values.get("tenant_id") is not None and not isinstance(values["tenant_id"], str):
        raise ScimError("tenant must be a tenant id or '*'.", "invalidValue")
    if "key_prefixes" in values:
        prefixes = values["key_prefixes"] or ()
        if not isinstance(prefixes, (list, tuple)) or not all(isinstance(p, str) for p in prefixes):
            raise ScimError("keyPrefixes must be a list of strings.", "invalidValue")
        if len(prefixes) > 100 or any(len(prefix) > 256 for prefix in prefixes):
            raise ScimError("keyPrefixes: at most 100, of 256 characters each.", "invalidValue")
        values["key_prefixes"] = tuple(prefixes)
    return values


def _visible(user_id: str) -> UserRow:
    user = scim.get_user(user_id)
    if user is None:
        raise NotFound(f"No user with id '{user_id}'.")
    return user


def create_user(context: AdminContext, body: Any) -> UserRow:
    _require(context, write=True)
    values = _values(body)
    now = int(time.time())
    user = UserRow(id=new_id("usr"), created_at=now, updated_at=now, version=1, **values)

    def create() -> UserRow:
        made = scim.insert_user(user)
        audit(
            context,
            "scim_user.create",
            ("scim_user", user.id),
            None,
            {"userName": [None, user.user_name]},
            now,
        )
        return made

    return commit_change(context, create)


def get_user(context: AdminContext, user_id: str) -> UserRow:
    _require(context)
    return _visible(user_id)


def list_users(context: AdminContext, query: dict[str, str]) -> tuple[list[UserRow], int, int]:
    _require(context)
    user_name = None
    if query.get("filter"):
        match = FILTER.fullmatch(query["filter"])
        if match is None:
            raise ScimError('Only filter=userName eq "…" is supported.', "invalidFilter")
        user_name = match.group(1).replace('\\"', '"').replace("\\\\", "\\")
    start = min(_int(query.get("startIndex"), 1, "startIndex"), MAX_START)
    count = min(_int(query.get("count"), 100, "count", minimum=0), MAX_COUNT)
    users, total = scim.page_users(user_name, max(start, 1), count)
    return users, total, max(start, 1)


def _int(text: str | None, default: int, name: str, minimum: int = -(2**31)) -> int:
    if text is None or text == "":
        return default
    try:
        value = int(text)
    except ValueError:
        raise ScimError(f"{name} must be an integer.", "invalidValue") from None
    return max(value, minimum)


def replace_user(context: AdminContext, user_id: str, body: Any) -> UserRow:
    _require(context, write=True)
    values = _values(body)
    return _change(context, user_id, values)


def patch_user(context: AdminContext, user_id: str, body: Any) -> UserRow:
    _require(context, write=True)
    if not isinstance(body, dict) or PATCH not in (body.get("schemas") or []):
        raise ScimError(f"A PATCH body is a {PATCH} message.", "invalidSyntax")
    operations = body.get("Operations")
    if not isinstance(operations, list) or not operations:
        raise ScimError("Operations must be a non-empty list.", "invalidSyntax")
    changes: dict[str, Any] = {}
    for operation in operations:
        changes.update(_operation(operation))
    return _change(context, user_id, _checked(changes, partial=True))


def _operation(operation: Any) -> dict[str, Any]:
    if not isinstance(operation, dict):
        raise ScimError("Each operation must be an object.", "invalidSyntax")
    op = str(operation.get("op", "")).lower()
    path, value = operation.get("path"), operation.get("value")
    if op not in ("add", "replace", "remove"):
        raise ScimError(f"Unknown op {operation.get('op')!r}.", "invalidSyntax")
    if path is None:
        if op == "remove" or not isinstance(value, dict):
            raise ScimError("An operation without a path takes an object value.", "noTarget")
        return _values(value, partial=True)
    column = _column(str(path))
    if op == "remove":
        if column in ("user_name", "active"):
            raise ScimError(f"{path} cannot be removed.", "mutability")
        return {column: () if column == "key_prefixes" else None}
    return {column: value}


def _column(path: str) -> str:
    if path in SIMPLE:
        return SIMPLE[path]
    name = path.removeprefix(EXTENSION + ":")
    if name in EXTENDED and path != name:
        return EXTENDED[name]
    raise ScimError(f"Unknown or unsupported path {path!r}.", "invalidPath")


def _change(context: AdminContext, user_id: str, changes: dict[str, Any]) -> UserRow:
    def change() -> UserRow:
        before = _visible(user_id)
        after = scim.update_user(before, changes)
        diff = {
            name: [getattr(before, name), value]
            for name, value in changes.items()
            if getattr(before, name) != value
        }
        audit(context, "scim_user.update", ("scim_user", user_id), None, diff, after.updated_at)
        return after

    return commit_change(context, change)


def delete_user(context: AdminContext, user_id: str) -> None:
    _require(context, write=True)

    def delete() -> None:
        before = _visible(user_id)
        scim.delete_user(user_id)
        audit(
            context,
            "scim_user.delete",
            ("scim_user", user_id),
            None,
            {"userName": [before.user_name, None]},
            int(time.time()),
        )

    commit_change(context, delete)


def _require(context: AdminContext, write: bool = False) -> None:
    """Provisioning is for admins of every tenant and every key: a user's scope may be any."""
    context.admin.require_super()
    if context.admin.key_prefixes:
        raise PermissionDenied("An admin limited to key prefixes cannot provision users.")
    if write:
        context.admin.require_write()
