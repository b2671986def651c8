"""The gateway's OpenAPI 3.1 document, generated from the marshmallow schemas.

apispec's MarshmallowPlugin turns the request schemas of `protocol.responses.schemas`
into JSON Schema. `Text`, `Integer`, `Number` and `Flag` keep the mapping of
the marshmallow type they extend; the fields that validate by hand get
their property from `custom_field2properties`, built from the constants they
check against. (An attribute function belongs to one spec's converter;
`map_to_openapi_type` would write into apispec's module-wide mapping.)
`build_document` is pure: the API layer lists the operations and serves it.
"""

from __future__ import annotations

from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from marshmallow import Schema, fields

from app.protocol.responses.schemas import fields as schema_fields
from app.protocol.responses.schemas import items as item_schemas
from app.protocol.responses.schemas import requests as request_schemas

OPENAPI_VERSION = "3.1.0"
NULL = {"type": "null"}
# Under OpenAPI 3.1 the `schema` of an event stream describes each event.
SSE_EVENT = {
    "type": "object",
    "properties": {"event": {"type": "string"}, "data": {"type": "string"}},
    "required": ["data"],
}
# Typed-object unions, named once as components and referenced everywhere.
UNIONS = (
    (item_schemas.ITEM_SCHEMAS, "InputItem"),
    (item_schemas.PART_SCHEMAS, "ContentPart"),
    (request_schemas.TOOL_SCHEMAS, "Tool"),
)
ERROR_RESPONSES = {
    "400": ("BadRequest", "The request is invalid."),
    "401": ("Unauthorized", "No key, or one the gateway does not accept."),
    "403": ("Forbidden", "The key or admin role does not allow this."),
    "404": ("NotFound", "No such object."),
    "409": ("Conflict", "The request conflicts with what is stored."),
    "412": ("PreconditionFailed", "If-Match named a version the object has moved on from."),
    "413": ("PayloadTooLarge", "The request body is too large."),
    "4XX": ("UpstreamRefusal", "The backend refused the request; its status is passed on."),
    "507": ("InsufficientStorage", "The store's disk is full: nothing can be written."),
    "5XX": ("ServerError", "The gateway or its backend failed."),
}


class ErrorObject(Schema):
    message = schema_fields.Text(required=True)
    type = schema_fields.Text(required=True)
    param = schema_fields.Text(required=True, allow_none=True)
    code = schema_fields.Text(required=True, allow_none=True)


class ErrorBody(Schema):
    """Every error the gateway returns: `{"error": {message, type, param, code}}`."""

    error = fields.Nested(ErrorObject, required=True)


def custom_field2properties(self: Any, field: fields.Field, ret: dict, **kwargs: Any) -> dict:
    """Describe the hand-validated fields of `protocol.schemas` (an apispec attribute function)."""
    for field_type, describe in CUSTOM_FIELDS:
        if isinstance(field, field_type):
            return _nullable(field, describe(self, field))
    return {}


def _metadata(_converter: Any, _field: fields.Field) -> dict:
    return {
        "type": "object",
        "maxProperties": schema_fields.MAX_METADATA_PAIRS,
        "propertyNames": {"maxLength": schema_fields.MAX_METADATA_KEY},
        "additionalProperties": {"type": "string", "maxLength": schema_fields.MAX_METADATA_VALUE},
    }


def _item_list(converter: Any, field: item_schemas.ItemList) -> dict:
    items = _dispatch(converter, field.element)
    return {"type": "array", "items": items, "maxItems": item_schemas.MAX_CONVERSATION_ITEMS}


def _string_or_list(converter: Any, field: schema_fields.StringOrList) -> dict:
    items = _dispatch(converter, field.element)
    return {"oneOf": [{"type": "string"}, {"type": "array", "items": items}]}


def _dispatch(converter: Any, field: schema_fields.Dispatch) -> dict:
    """A `$ref` to the union of the schemas `field` dispatches to, added on first use."""
    name = next(name for table, name in UNIONS if table is field.schemas)
    if name not in converter.spec.components.schemas:
        variants = [
            _variant(converter, kind, schema, field) for kind, schema in field.schemas.items()
        ]
        union = {"type": "object", "oneOf": variants}
        converter.spec.components.schema(name, union)
    return {"$ref": f"#/components/schemas/{name}"}


def _variant(converter: Any, kind: str, schema: Schema, field: schema_fields.Dispatch) -> dict:
    variant = converter.schema2jsonschema(schema)
    variant["title"] = kind
    variant["properties"] = {"type": {"const": kind}, **variant["properties"]}
    if kind != field.default_type:
        variant["required"] = ["type", *variant.get("required", [])]
    return variant


def _tool_choice(_converter: Any, _field: fields.Field) -> dict:
    named = {"properties": {"type": {"enum": ["function", "custom"]}}, "required": ["type"]}
    return {
        "oneOf": [
            {"type": "string", "enum": ["auto", "none", "required"]},
            {
                "type": "object",
                "properties": {"type": {"type": "string"}, "name": {"type": "string"}},
                "required": ["type"],
                "if": named,
                "then": {"required": ["type", "name"]},
            },
        ]
    }


def _anything(_converter: Any, _field: fields.Field) -> dict:
    return {}  # any JSON value; `_nullable` still refuses null unless allowed


def _conversation_ref(_converter: Any, _field: fields.Field) -> dict:
    conversation_id = {"type": "string", "minLength": 1}
    by_object = {"type": "object", "properties": {"id": conversation_id}, "required": ["id"]}
    return {"oneOf": [conversation_id, by_object]}


CUSTOM_FIELDS = (
    (item_schemas.ItemList, _item_list),
    (schema_fields.StringOrList, _string_or_list),  # InputField, TextOrParts
    (schema_fields.Dispatch, _dispatch),
    (schema_fields.Metadata, _metadata),
    (request_schemas.ToolChoice, _tool_choice),
    (request_schemas.ConversationRef, _conversation_ref),
    (schema_fields.Anything, _anything),
)


def _nullable(field: fields.Field, prop: dict) -> dict:
    """Add (or, for an untyped field, refuse) null, as marshmallow's `allow_none` does."""
    if not prop:
        return {} if field.allow_none else {"not": NULL}
    if not field.allow_none:
        return prop
    if "oneOf" in prop:
        return {**prop, "oneOf": [*prop["oneOf"], NULL]}
    if "$ref" in prop:
        return {"anyOf": [prop, NULL]}
    return {**prop, "type": [prop["type"], "null"]}


def build_document(title: str, version: str, paths: dict[str, dict[str, Any]]) -> dict:
    """Return the OpenAPI document of `paths` ({path: {method: operation}}).

    An operation has a `summary`, and may name a request `body` schema, a
    `query` schema, whether it can answer with a `stream`, its `errors`
    (statuses answered in the error shape) and its `object_statuses`
    (answered with an object), or the `text` media type it answers with, or
    the multipart `form` an upload sends.
    Path parameters come from the `{names}` in the path. Every operation may
    send a bearer key (required in keys mode, and by the admin API).
    """
    plugin = MarshmallowPlugin()
    spec = APISpec(title, version, OPENAPI_VERSION, plugins=[plugin], security=[{"bearer": []}, {}])
    spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer"})
    plugin.converter.add_attribute_function(custom_field2properties)
    spec.components.schema("Error", schema=ErrorBody)
    for name, description in ERROR_RESPONSES.values():
        error = {"$ref": "#/components/schemas/Error"}
        spec.components.response(name, {"description": description, **_content(error)})
    for path, methods in paths.items():
        operations = {method: _operation(path, **op) for method, op in methods.items()}
        spec.path(path=path, operations=operations)
    return spec.to_dict()


def _operation(
    path: str,
    summary: str,
    body: type[Schema] | None = None,
    query: type[Schema] | None = None,
    stream: bool = False,
    errors: tuple[str, ...] = ("400", "401", "404", "5XX"),
    object_statuses: tuple[str, ...] = ("200",),
    text: str | None = None,
    form: type[Schema] | None = None,
) -> dict:
    names = [part[1:-1] for part in path.split("/") if part.startswith("{")]
    parameters: list[Any] = [
        {"in": "path", "name": name, "required": True, "schema": {"type": "string"}}
        for name in names
    ]
    if query is not None:
        parameters.append({"in": "query", "schema": query})
    ok = {"description": "OK", **_content({"type": "object"}, stream)}
    if text is not None:  # not JSON: a CSV export, Prometheus' text
        ok = {"description": "OK", "content": {text: {"schema": {"type": "string"}}}}
    responses = {status: ok for status in object_statuses}
    responses |= {status: ERROR_RESPONSES[status][0] for status in errors}
    operation = {"summary": summary, "parameters": parameters, "responses": responses}
    if body is not None:
        required = any(field.required for field in body().fields.values())
        operation["requestBody"] = {"required": required, **_content(body)}
        operation["responses"]["413"] = ERROR_RESPONSES["413"][0]
    if form is not None:  # an upload
        multipart = {"multipart/form-data": {"schema": form}}
        operation["requestBody"] = {"required": True, "content": multipart}
        operation["responses"]["413"] = ERROR_RESPONSES["413"][0]
    return operation


def _content(schema: Any, stream: bool = False) -> dict:
    content = {"application/json": {"schema": schema}}
    if stream:
        content["text/event-stream"] = {"schema": SSE_EVENT}
    return {"content": content}
