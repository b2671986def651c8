"""Request schemas of the admin plane, as strict as the Responses API's own.

Every body is checked whole before anything is changed: unknown fields,
wrong JSON types and values out of range are one OpenAI-shaped 400 naming
the parameter (app/protocol/responses/schemas/errors.py).
"""

from __future__ import annotations

from marshmallow import RAISE, Schema, fields, validate

from app.protocol.responses.schemas.fields import FullMatch, Integer, Metadata, Text

TENANT_ID = r"[a-z0-9][a-z0-9_-]{0,63}"
MAX_NAME = 256
MAX_OWNER_ID = 128
MAX_MODEL_PATTERNS = 100
MAX_GRACE_SECONDS = 7 * 24 * 3600
KEY_STATUSES = ("active", "disabled")
TENANT_STATUSES = ("active", "disabled")


def _name(**kwargs: object) -> Text:
    # Printable, no leading or trailing space: a name an operator can read back.
    return Text(
        validate=FullMatch(
            r"\S(?:[^\x00-\x1f\x7f]{0,254}\S)?",
            error="Must be 1 to 256 printable characters, without leading or trailing spaces.",
        ),
        **kwargs,
    )


def _owner_id(**kwargs: object) -> Text:
    return Text(validate=validate.Length(1, MAX_OWNER_ID), **kwargs)


class Strict(Schema):
    class Meta:
        unknown = RAISE


class CreateTenant(Strict):
    id = Text(
        validate=FullMatch(TENANT_ID, error="Must be 1 to 64 lowercase letters, digits, _ or -.")
    )
    name = _name(required=True)
    metadata = Metadata()


class UpdateTenant(Strict):
    name = _name()
    metadata = Metadata()
    status = Text(validate=validate.OneOf(TENANT_STATUSES))


class ModelPatterns(fields.List):
    """Model names or globs (`gpt-4o*`); null: every model."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(
            Text(validate=validate.Length(1, MAX_NAME)),
            validate=validate.Length(max=MAX_MODEL_PATTERNS),
            allow_none=True,
            **kwargs,
        )


class CreateKey(Strict):
    name = _name(required=True)
    tenant_id = Text(validate=FullMatch(TENANT_ID, error="Not a tenant id."))
    project_id = _owner_id(allow_none=True)
    user_id = _owner_id(allow_none=True)
    allowed_models = ModelPatterns()
    expires_at = Integer(allow_none=True, validate=validate.Range(min=1))
    metadata = Metadata()


class UpdateKey(Strict):
    name = _name()
    project_id = _owner_id(allow_none=True)
    user_id = _owner_id(allow_none=True)
    allowed_models = ModelPatterns()
    expires_at = Integer(allow_none=True, validate=validate.Range(min=1))
    metadata = Metadata()
    status = Text(validate=validate.OneOf(KEY_STATUSES))


class RotateKey(Strict):
    grace_seconds = Integer(validate=validate.Range(0, MAX_GRACE_SECONDS))


CREATE_TENANT = CreateTenant()
UPDATE_TENANT = UpdateTenant()
CREATE_KEY = CreateKey()
UPDATE_KEY = UpdateKey()
ROTATE_KEY = RotateKey()
