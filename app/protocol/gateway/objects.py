"""The admin plane's objects as the API returns them, built from the store's rows."""

from __future__ import annotations

from typing import Any

from app.auth.tokens import token_prefix

# Fields of a key that are never shown, nor written to the audit log.
SECRET_FIELDS = ("secret_hash", "previous_hash", "lookup_id")


def tenant_object(tenant: Any) -> dict[str, Any]:
    return {
        "id": tenant.id,
        "object": "gateway.tenant",
        "name": tenant.name,
        "status": tenant.status,
        "metadata": tenant.metadata,
        "created_at": tenant.created_at,
        "updated_at": tenant.updated_at,
        "version": tenant.version,
    }


def key_object(key: Any, status: str) -> dict[str, Any]:
    """A key as an admin sees it: never its secret, only what tells it apart."""
    return {
        "id": key.id,
        "object": "gateway.key",
        "name": key.name,
        "tenant_id": key.tenant_id,
        "project_id": key.project_id,
        "user_id": key.user_id,
        "allowed_models": None if key.allowed_models is None else list(key.allowed_models),
        "expires_at": key.expires_at,
        "metadata": key.metadata,
        "token_prefix": token_prefix(key.lookup_id),
        "last4": key.last4,
        "status": status,
        "rotation_id": key.rotation_id,
        "rotated_at": key.rotated_at,
        "previous_secret_expires_at": key.previous_expires_at,
        "created_at": key.created_at,
        "updated_at": key.updated_at,
        "version": key.version,
    }


def deleted_object(object_id: str, kind: str) -> dict[str, Any]:
    return {"id": object_id, "object": f"gateway.{kind}.deleted", "deleted": True}
