"""Request schemas of the admin plane, as strict as the Responses API's own.

Every body is checked whole before anything is changed: unknown fields,
wrong JSON types and values out of range are one OpenAI-shaped 400 naming
the parameter (app/protocol/responses/schemas/errors.py).
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

from marshmallow import RAISE, Schema, ValidationError, fields, validate

from app.protocol.responses.schemas.fields import FullMatch, Integer, Metadata, Number, Text

TENANT_ID = r"[a-z0-9][a-z0-9_-]{0,63}"
MAX_NAME = 256
MAX_OWNER_ID = 128
MAX_MODEL_PATTERNS = 100
MAX_GRACE_SECONDS = 7 * 24 * 3600
KEY_STATUSES = ("active", "disabled")
BUDGET_PERIODS = ("none", "daily", "weekly", "monthly")
MAX_USD = 1e9
MAX_LIMIT = 2**31 - 1
MAX_PRICES = 1000
MAX_MICROS_PER_MILLION = 10**12
MAX_TIME = 2**53  # seconds: far beyond any date, within what every database holds
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


def _time_zone(name: str) -> None:
    if name == "UTC":
        return
    try:
        ZoneInfo(name)
    except (ValueError, KeyError, OSError):
        raise ValidationError("Must be an IANA time zone name, e.g. Europe/Paris.") from None


def _usd(**kwargs: object) -> Number:
    kwargs.setdefault("allow_none", True)  # null: no budget
    return Number(validate=validate.Range(0, MAX_USD), **kwargs)


def _limit() -> Integer:
    return Integer(allow_none=True, validate=validate.Range(1, MAX_LIMIT))


class BudgetFields(Strict):
    """A budget in USD per period (kept as integer micro-USD); null turns it off."""

    max_budget_usd = _usd()
    soft_budget_usd = _usd()
    budget_period = Text(validate=validate.OneOf(BUDGET_PERIODS))
    budget_timezone = Text(validate=[validate.Length(1, 64), _time_zone])


class CreateTenant(BudgetFields):
    id = Text(
        validate=FullMatch(TENANT_ID, error="Must be 1 to 64 lowercase letters, digits, _ or -.")
    )
    name = _name(required=True)
    metadata = Metadata()


class UpdateTenant(BudgetFields):
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


class KeyLimits(BudgetFields):
    budget_id = Text(allow_none=True, validate=validate.Length(1, 80))
    rpm_limit = _limit()
    tpm_limit = _limit()
    max_parallel_requests = _limit()


class CreateKey(KeyLimits):
    name = _name(required=True)
    tenant_id = Text(validate=FullMatch(TENANT_ID, error="Not a tenant id."))
    project_id = _owner_id(allow_none=True)
    user_id = _owner_id(allow_none=True)
    allowed_models = ModelPatterns()
    expires_at = Integer(allow_none=True, validate=validate.Range(1, MAX_TIME))
    metadata = Metadata()


class UpdateKey(KeyLimits):
    name = _name()
    project_id = _owner_id(allow_none=True)
    user_id = _owner_id(allow_none=True)
    allowed_models = ModelPatterns()
    expires_at = Integer(allow_none=True, validate=validate.Range(1, MAX_TIME))
    metadata = Metadata()
    status = Text(validate=validate.OneOf(KEY_STATUSES))


class RotateKey(Strict):
    grace_seconds = Integer(validate=validate.Range(0, MAX_GRACE_SECONDS))


class CreateBudget(BudgetFields):
    name = _name(required=True)
    tenant_id = Text(validate=FullMatch(TENANT_ID, error="Not a tenant id."))
    max_budget_usd = _usd(required=True, allow_none=False)
    metadata = Metadata()


class UpdateBudget(BudgetFields):
    name = _name()
    metadata = Metadata()


class ModelPrice(Strict):
    """Micro-USD per million tokens of one model."""

    model = Text(required=True, validate=validate.Length(1, MAX_NAME))
    input_micros_per_million = Integer(
        required=True, validate=validate.Range(0, MAX_MICROS_PER_MILLION)
    )
    cached_input_micros_per_million = Integer(validate=validate.Range(0, MAX_MICROS_PER_MILLION))
    output_micros_per_million = Integer(
        required=True, validate=validate.Range(0, MAX_MICROS_PER_MILLION)
    )
    max_output_tokens = Integer(allow_none=True, validate=validate.Range(1, MAX_LIMIT))


class PutPrices(Strict):
    tenant_id = Text(allow_none=True, validate=FullMatch(TENANT_ID, error="Not a tenant id."))
    prices = fields.List(
        fields.Nested(ModelPrice), required=True, validate=validate.Length(1, MAX_PRICES)
    )


class CreateAdminToken(Strict):
    name = _name(required=True)
    role = Text(required=True, validate=validate.OneOf(("viewer", "admin")))
    tenant_id = Text(allow_none=True, validate=FullMatch(TENANT_ID, error="Not a tenant id."))
    allowed_key_prefixes = fields.List(
        Text(validate=validate.Length(1, MAX_NAME)), validate=validate.Length(max=100)
    )
    expires_at = Integer(allow_none=True, validate=validate.Range(1, MAX_TIME))


CREATE_TENANT = CreateTenant()
UPDATE_TENANT = UpdateTenant()
CREATE_KEY = CreateKey()
UPDATE_KEY = UpdateKey()
ROTATE_KEY = RotateKey()
CREATE_BUDGET = CreateBudget()
UPDATE_BUDGET = UpdateBudget()
PUT_PRICES = PutPrices()
CREATE_ADMIN_TOKEN = CreateAdminToken()
