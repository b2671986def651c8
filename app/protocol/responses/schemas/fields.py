"""The field types every request schema is made of, strict about JSON types.

Strings are not coerced into numbers nor numbers into strings; metadata
keeps the API's limits; `Dispatch` validates an object by the schema its
`type` names; `Lenient` schemas check what the gateway uses and let newer
fields through.
"""

from __future__ import annotations

from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate

MAX_METADATA_PAIRS = 16
MAX_METADATA_KEY = 64
MAX_METADATA_VALUE = 512


class FullMatch(validate.Regexp):
    """A pattern the whole value must match (`$` alone lets a trailing newline through)."""

    def __call__(self, value: str) -> str:
        if self.regex.fullmatch(value) is None:
            raise ValidationError(self._format_error(value))
        return value


class Anything(fields.Raw):
    """A field that accepts any JSON value (checked elsewhere or passed through)."""


class Text(fields.String):
    """A string field that refuses non-strings instead of coercing them."""

    default_error_messages = {"invalid": "Expected a string."}  # = NOT_A_STRING


class Integer(fields.Integer):
    """A whole number; strings and booleans are refused."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(strict=True, **kwargs)

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, bool):
            raise self.make_error("invalid")
        return super()._deserialize(value, attr, data, **kwargs)


class Number(fields.Float):
    """A JSON number; strings and booleans are refused."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, (bool, str)):
            raise self.make_error("invalid")
        return super()._deserialize(value, attr, data, **kwargs)


class Flag(fields.Boolean):
    """A JSON boolean; "true" or 1 are refused."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        if not isinstance(value, bool):
            raise self.make_error("invalid")
        return value


TOO_MANY_PAIRS = f"Must have at most {MAX_METADATA_PAIRS} key-value pairs."
KEY_TOO_LONG = f"Keys must be at most {MAX_METADATA_KEY} characters."
VALUE_TOO_LONG = f"Values must be at most {MAX_METADATA_VALUE} characters."
NOT_A_STRING = "Expected a string."
# The OpenAI API's codes for these refusals (see invalid_request_from).
ERROR_CODES = {
    TOO_MANY_PAIRS: "object_above_max_properties",
    KEY_TOO_LONG: "string_above_max_length",
    VALUE_TOO_LONG: "string_above_max_length",
}
TYPE_ERROR_PREFIXES = ("Not a valid", "Expected ", "Invalid input type")


class Metadata(fields.Dict):
    """Up to 16 string pairs; keys up to 64 characters, values up to 512."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        value = super()._deserialize(value, attr, data, **kwargs)
        if len(value) > MAX_METADATA_PAIRS:
            raise ValidationError(TOO_MANY_PAIRS)
        for key, item in value.items():
            if len(key) > MAX_METADATA_KEY:
                raise ValidationError(KEY_TOO_LONG)
            if not isinstance(item, str):
                raise ValidationError({key: [NOT_A_STRING]})
            if len(item) > MAX_METADATA_VALUE:
                raise ValidationError({key: [VALUE_TOO_LONG]})
        return value


class Lenient(Schema):
    """Item and part schemas: check what we use, let newer fields through."""

    class Meta:
        unknown = EXCLUDE


class Dispatch(fields.Field):
    """A JSON object validated by the schema its `type` names."""

    def __init__(self, schemas: dict[str, Schema], kind: str, default_type: str | None = None):
        super().__init__()
        self.schemas = schemas
        self.kind = kind
        self.default_type = default_type

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        if not isinstance(value, dict):
            raise ValidationError(f"Expected an object ({self.kind}).")
        item_type = value.get("type", self.default_type)
        schema = self.schemas.get(item_type) if isinstance(item_type, str) else None
        if schema is None:
            raise ValidationError({"type": [f"Unsupported {self.kind} type: {item_type!r}."]})
        errors = schema.validate(value)
        if errors:
            raise ValidationError(errors)
        return value


class StringOrList(fields.Field):
    """A string, or a list whose every element `element` accepts."""

    def __init__(self, element: Dispatch, what: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.element = element
        self.what = what

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, str):
            return value
        if not isinstance(value, list):
            raise ValidationError(f"Expected a string or an array of {self.what}.")
        errors = {}
        for index, element in enumerate(value):
            try:
                self.element.deserialize(element)
            except ValidationError as exc:
                errors[index] = exc.messages
        if errors:
            raise ValidationError(errors)
        return value
