"""The OpenAPI document the gateway serves (app/api/openapi.py, app/protocol/openapi_spec.py).

It must be valid OpenAPI 3.1, name every /v1 route the app has (and no
other), carry every field of each request schema, and describe the
hand-validated fields so that the JSON Schema and marshmallow agree: the
same bodies accepted, the same refused.
"""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest
from marshmallow import Schema
from openapi_spec_validator import OpenAPIV31SpecValidator

from app.api.openapi import ADMIN_DOCUMENT, admin_document, document
from app.errors import InvalidRequest
from app.protocol.responses.schemas import (
    AddItemsRequest,
    CreateConversationRequest,
    CreateResponseRequest,
    UpdateConversationRequest,
    validate_conversation_request,
    validate_create_request,
)
from app.protocol.responses.schemas.fields import (
    MAX_METADATA_KEY,
    MAX_METADATA_PAIRS,
    MAX_METADATA_VALUE,
)
from tests.unit.fixtures import load_fixture

REQUEST_SCHEMAS = (
    CreateResponseRequest,
    CreateConversationRequest,
    UpdateConversationRequest,
    AddItemsRequest,
)
IGNORED_METHODS = {"HEAD", "OPTIONS"}
MESSAGE = {"type": "message", "role": "user", "content": "hi"}


def component(name: str) -> dict[str, Any]:
    return document()["components"]["schemas"][name]


def json_schema_accepts(schema_name: str, body: Any) -> bool:
    """Whether the document's JSON Schema for `schema_name` accepts `body`."""
    schema = {
        "$ref": f"#/components/schemas/{schema_name}",
        "components": document()["components"],
    }
    return jsonschema.Draft202012Validator(schema).is_valid(body)


def marshmallow_accepts(validate: Any, body: Any) -> bool:
    try:
        validate(body)
    except InvalidRequest:
        return False
    return True


def body(**fields: Any) -> dict[str, Any]:
    return {"model": "fake-model", "input": "hi", **fields}


# --- the document ----------------------------------------------------------------


@pytest.mark.parametrize("build", [document, admin_document])
def test_document_is_valid_openapi_3_1(build):
    spec = build()
    assert spec["openapi"] == "3.1.0"
    errors = list(OpenAPIV31SpecValidator(spec).iter_errors())
    assert errors == []


def test_document_is_built_once():
    assert document() is document()


def test_document_is_served_at_openapi_json(client):
    response = client.get("/openapi.json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert response.get_json() == document()


def _documented(doc: dict) -> set[tuple[str, str]]:
    return {(path, method) for path, operations in doc["paths"].items() for method in operations}


def test_every_v1_route_is_documented_and_nothing_else(app):
    routes = {
        (rule.rule.replace("<", "{").replace(">", "}"), method.lower())
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith("/v1")
        and rule.rule != ADMIN_DOCUMENT
        # Not the admin API: the dashboard's page, and SCIM (RFC 7644 is its contract).
        and not rule.endpoint.startswith(("dashboard.", "scim."))
        for method in rule.methods - IGNORED_METHODS
    }
    admin = {route for route in routes if route[0].startswith("/v1/gateway/")}
    data_plane = {path for path in _documented(document()) if path[0].startswith("/v1")}
    assert len(routes - admin) >= 14 and len(admin) >= 13
    assert data_plane == routes - admin
    assert _documented(admin_document()) == admin


def test_admin_document_is_served_without_a_token(client):
    response = client.get(ADMIN_DOCUMENT)
    assert response.status_code == 200
    assert response.get_json() == admin_document()
    assert response.get_json()["info"]["title"].endswith("admin plane")


def test_admin_operations_name_the_admin_errors():
    paths = admin_document()["paths"]
    assert set(paths["/v1/gateway/keys/{key_id}"]["patch"]["responses"]) >= {"401", "403", "412"}
    assert "201" in paths["/v1/gateway/keys"]["post"]["responses"]
    query = {p["name"] for p in paths["/v1/gateway/keys"]["get"]["parameters"]}
    assert query == {
        "limit",
        "order",
        "after",
        "before",
        "tenant_id",
        "project_id",
        "status",
        "name_prefix",
    }


def test_every_path_parameter_is_declared():
    for path, operations in document()["paths"].items():
        names = {part[1:-1] for part in path.split("/") if part.startswith("{")}
        for operation in operations.values():
            declared = {p["name"] for p in operation["parameters"] if p["in"] == "path"}
            assert declared == names, path


def test_list_endpoints_document_their_page_parameters():
    for path in (
        "/v1/responses/{response_id}/input_items",
        "/v1/conversations/{conversation_id}/items",
    ):
        query = {
            parameter["name"]: parameter["schema"]
            for parameter in document()["paths"][path]["get"]["parameters"]
            if parameter["in"] == "query"
        }
        assert set(query) == {"limit", "order", "after", "before"}
        assert query["limit"] == {"type": "integer", "minimum": 1, "maximum": 100}
        assert query["order"]["enum"] == ["asc", "desc"]


@pytest.mark.parametrize("schema", REQUEST_SCHEMAS, ids=lambda schema: schema.__name__)
def test_request_schema_lists_every_marshmallow_field(schema: type[Schema]):
    documented = component(schema.__name__)
    assert set(documented["properties"]) == set(schema().fields)
    required = {name for name, field in schema().fields.items() if field.required}
    assert set(documented.get("required", [])) == required
    assert documented["additionalProperties"] is False


def test_request_bodies_reference_the_schemas():
    paths = document()["paths"]
    bodies = {
        ("/v1/responses", "post"): "CreateResponseRequest",
        ("/v1/conversations", "post"): "CreateConversationRequest",
        ("/v1/conversations/{conversation_id}", "post"): "UpdateConversationRequest",
        ("/v1/conversations/{conversation_id}/items", "post"): "AddItemsRequest",
    }
    for (path, method), name in bodies.items():
        content = paths[path][method]["requestBody"]["content"]
        assert content["application/json"]["schema"] == {"$ref": f"#/components/schemas/{name}"}
    assert paths["/v1/conversations"]["post"]["requestBody"]["required"] is False
    assert paths["/v1/responses"]["post"]["requestBody"]["required"] is True


def test_errors_are_documented_in_the_openai_shape():
    error = component("Error")
    assert error["required"] == ["error"]
    detail = component("ErrorObject")
    assert set(detail["properties"]) == {"message", "type", "param", "code"}
    assert set(detail["required"]) == {"message", "type", "param", "code"}
    operation = document()["paths"]["/v1/responses"]["post"]
    for status in ("400", "404", "413", "4XX", "5XX"):
        assert "$ref" in operation["responses"][status], status


def test_streaming_operations_document_event_streams():
    paths = document()["paths"]
    for path, method in (("/v1/responses", "post"), ("/v1/responses/{response_id}", "get")):
        content = paths[path][method]["responses"]["200"]["content"]
        assert set(content) == {"application/json", "text/event-stream"}


# --- custom fields -----------------------------------------------------------------


def test_input_is_a_string_or_a_list_of_typed_items():
    prop = component("CreateResponseRequest")["properties"]["input"]
    assert prop == {
        "oneOf": [
            {"type": "string"},
            {"type": "array", "items": {"$ref": "#/components/schemas/InputItem"}},
        ]
    }
    variants = component("InputItem")["oneOf"]
    kinds = [variant["properties"]["type"]["const"] for variant in variants]
    assert "message" in kinds and "function_call_output" in kinds
    for variant in variants:
        assert ("type" in variant.get("required", [])) == (variant["title"] != "message")


def test_metadata_is_an_object_of_bounded_strings():
    prop = component("CreateResponseRequest")["properties"]["metadata"]
    assert prop == {
        "type": ["object", "null"],
        "maxProperties": MAX_METADATA_PAIRS,
        "propertyNames": {"maxLength": MAX_METADATA_KEY},
        "additionalProperties": {"type": "string", "maxLength": MAX_METADATA_VALUE},
    }
    assert component("UpdateConversationRequest")["required"] == ["metadata"]


def test_plain_custom_fields_keep_their_json_types():
    props = component("CreateResponseRequest")["properties"]
    assert props["model"]["type"] == "string"
    assert props["stream"]["type"] == ["boolean", "null"]
    assert props["temperature"]["type"] == ["number", "null"]
    assert props["max_output_tokens"]["type"] == ["integer", "null"]
    assert props["client_metadata"] == {}


# --- JSON Schema and marshmallow agree ---------------------------------------------

ACCEPTED_BODIES = {
    # Both ways to continue at once break a rule across parameters (tested with the schemas).
    "full fixture": {
        k: v for k, v in load_fixture("full_create_request").items() if k != "previous_response_id"
    },
    "minimal": body(),
    "conversation by object": body(conversation={"id": "conv_1"}),
    "tool choice mode": body(tool_choice="required"),
    "item without type is a message": body(input=[{"role": "user", "content": "hi"}]),
    "content parts": body(input=[{**MESSAGE, "content": [{"type": "input_text", "text": "a"}]}]),
    "null options": body(metadata=None, tools=None, text=None, conversation=None),
}
REFUSED_BODIES = {
    "missing model": {"input": "hi"},
    "unknown parameter": body(temperature_x=1),
    "input not a string or list": body(input=5),
    "unknown item type": body(input=[{"type": "bogus"}]),
    "item not an object": body(input=["hi"]),
    "content part without text": body(input=[{**MESSAGE, "content": [{"type": "input_text"}]}]),
    "null annotation": body(
        input=[
            {
                **MESSAGE,
                "role": "assistant",
                "content": [{"type": "output_text", "text": "a", "annotations": [None]}],
            }
        ]
    ),
    "too many metadata pairs": body(metadata={f"k{i}": "v" for i in range(17)}),
    "metadata key too long": body(metadata={"k" * 65: "v"}),
    "metadata value too long": body(metadata={"k": "v" * 513}),
    "metadata value not a string": body(metadata={"k": 1}),
    "tool choice unknown mode": body(tool_choice="sometimes"),
    "tool choice function without name": body(tool_choice={"type": "function"}),
    "empty conversation id": body(conversation=""),
    "conversation object without id": body(conversation={}),
    "function tool without name": body(tools=[{"type": "function"}]),
    "tool name with spaces": body(tools=[{"type": "function", "name": "a b"}]),
    "top_p above 1": body(top_p=1.5),
    "temperature as a string": body(temperature="1"),
    "stream as a string": body(stream="true"),
    "model with a space": body(model="a b"),
    "empty model": body(model=""),
}


@pytest.mark.parametrize("request_body", ACCEPTED_BODIES.values(), ids=ACCEPTED_BODIES)
def test_json_schema_accepts_what_the_gateway_accepts(request_body: Any):
    assert marshmallow_accepts(validate_create_request, request_body)
    assert json_schema_accepts("CreateResponseRequest", request_body)


@pytest.mark.parametrize("request_body", REFUSED_BODIES.values(), ids=REFUSED_BODIES)
def test_json_schema_refuses_what_the_gateway_refuses(request_body: Any):
    assert not marshmallow_accepts(validate_create_request, request_body)
    assert not json_schema_accepts("CreateResponseRequest", request_body)


CONVERSATION_BODIES = [
    ("create", "CreateConversationRequest", {}, True),
    ("create", "CreateConversationRequest", {"items": [MESSAGE], "metadata": {"a": "b"}}, True),
    ("create", "CreateConversationRequest", {"items": [MESSAGE] * 21}, False),
    ("create", "CreateConversationRequest", {"items": "hi"}, False),
    ("update", "UpdateConversationRequest", {"metadata": {"a": "b"}}, True),
    ("update", "UpdateConversationRequest", {}, False),
    ("add_items", "AddItemsRequest", {"items": [MESSAGE]}, True),
    ("add_items", "AddItemsRequest", {"items": [{"type": "bogus"}]}, False),
]


@pytest.mark.parametrize("kind, name, request_body, valid", CONVERSATION_BODIES)
def test_conversation_schemas_agree_with_the_gateway(
    kind: str, name: str, request_body: Any, valid: bool
):
    def validate(candidate: Any) -> Any:
        return validate_conversation_request(kind, candidate)

    assert marshmallow_accepts(validate, request_body) is valid
    assert json_schema_accepts(name, request_body) is valid
