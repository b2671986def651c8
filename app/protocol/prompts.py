"""Prompts: versioned templates with `{{variable}}` placeholders, and how a response uses one.

A prompt (`pmpt_…`) has versions 1, 2, …; each update makes the next one,
and names the version it was made from (`version`): an update from a
version that is no longer the latest is a conflict (409), so two editors
never overwrite each other unseen. `default_version` is what a reference
without a version gets.

`{"prompt": {"id", "version", "variables"}}` on a response renders the
template: each `{{name}}` becomes its variable, a string or an
`input_text` part's text. An `input_image` or `input_file` variable cannot
be text: its placeholder names it, and the part itself goes to the model
in a user message after the prompt's.
"""

from __future__ import annotations

import re
from typing import Any

from marshmallow import RAISE, Schema, validate

from app.errors import InvalidRequest
from app.protocol.responses.schemas.errors import validate_body
from app.protocol.responses.schemas.fields import Integer, Metadata, Text

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
MAX_TEMPLATE = 1024 * 1024
TEXT_PARTS = ("input_text",)
ATTACHED_PARTS = ("input_image", "input_file")


class Strict(Schema):
    class Meta:
        unknown = RAISE


class CreatePrompt(Strict):
    name = Text(required=True, validate=validate.Length(min=1, max=256))
    template = Text(required=True, validate=validate.Length(min=1, max=MAX_TEMPLATE))
    description = Text(allow_none=True, validate=validate.Length(max=4096))
    metadata = Metadata(allow_none=True)


class UpdatePrompt(Strict):
    version = Integer(required=True, validate=validate.Range(min=1))  # the one it was made from
    template = Text(validate=validate.Length(min=1, max=MAX_TEMPLATE))
    name = Text(validate=validate.Length(min=1, max=256))
    description = Text(allow_none=True, validate=validate.Length(max=4096))
    metadata = Metadata(allow_none=True)


class SetDefault(Strict):
    version = Integer(required=True, validate=validate.Range(min=1))


SCHEMAS: dict[str, Schema] = {
    "create": CreatePrompt(),
    "update": UpdatePrompt(),
    "set_default": SetDefault(),
}


def validate_prompt_request(kind: str, body: Any) -> dict[str, Any]:
    validate_body(SCHEMAS[kind], body)
    return body


def variables_of(template: str) -> list[str]:
    """The template's variable names, in the order they first appear."""
    return list(dict.fromkeys(PLACEHOLDER.findall(template)))


def prompt_object(prompt: dict[str, Any], version: dict[str, Any]) -> dict[str, Any]:
    """A prompt as the API returns it, at one of its versions."""
    return {
        "id": prompt["id"],
        "object": "prompt",
        "name": prompt["name"],
        "description": prompt["description"],
        "metadata": prompt["metadata"],
        "created_at": prompt["created_at"],
        "version": version["version"],
        "default_version": prompt["default_version"],
        "latest_version": prompt["latest_version"],
        "template": version["template"],
        "variables": variables_of(version["template"]),
        "version_created_at": version["created_at"],
    }


def version_object(prompt_id: str, version: dict[str, Any], default: int) -> dict[str, Any]:
    return {
        "object": "prompt.version",
        "prompt_id": prompt_id,
        "version": version["version"],
        "template": version["template"],
        "variables": variables_of(version["template"]),
        "created_at": version["created_at"],
        "is_default": version["version"] == default,
    }


def reference(value: Any) -> tuple[str, int | None, dict[str, Any]]:
    """A response's `prompt` parameter, checked: its id, version (None: the default) and
    variables."""
    if not isinstance(value, dict):
        raise InvalidRequest("Invalid type for 'prompt': expected an object.", param="prompt")
    unknown = set(value) - {"id", "version", "variables"}
    if unknown:
        raise InvalidRequest(f"Unknown parameter: 'prompt.{sorted(unknown)[0]}'.", param="prompt")
    prompt_id = value.get("id")
    if not isinstance(prompt_id, str) or not prompt_id:
        raise InvalidRequest("Missing required parameter: 'prompt.id'.", param="prompt.id")
    version = value.get("version")
    if version is not None:
        try:
            version = int(str(version))
        except ValueError:
            raise InvalidRequest(
                "Invalid 'prompt.version': expected a version number.", param="prompt.version"
            ) from None
        if version < 1:
            raise InvalidRequest(
                "Invalid 'prompt.version': versions start at 1.", param="prompt.version"
            )
    variables = value.get("variables") or {}
    if not isinstance(variables, dict):
        raise InvalidRequest(
            "Invalid type for 'prompt.variables': expected an object.", param="prompt.variables"
        )
    for name, variable in variables.items():
        if isinstance(variable, str):
            continue
        kind = variable.get("type") if isinstance(variable, dict) else None
        if kind not in TEXT_PARTS + ATTACHED_PARTS:
            raise InvalidRequest(
                f"Invalid 'prompt.variables.{name}': expected a string or an input_text, "
                "input_image or input_file part.",
                param=f"prompt.variables.{name}",
            )
        if kind == "input_text" and not isinstance(variable.get("text"), str):
            raise InvalidRequest(
                f"Invalid 'prompt.variables.{name}': an input_text part needs its 'text'.",
                param=f"prompt.variables.{name}",
            )
    return prompt_id, version, variables


def render(template: str, variables: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    """The template's text with its variables in place, and the parts that go beside it."""
    missing = [name for name in variables_of(template) if name not in variables]
    if missing:
        raise InvalidRequest(
            f"Missing prompt variable '{missing[0]}': the template uses it.",
            param="prompt.variables",
        )
    attached: list[dict[str, Any]] = []

    def value(match: re.Match[str]) -> str:
        variable = variables[match.group(1)]
        if isinstance(variable, str):
            return variable
        if variable["type"] == "input_text":
            return variable["text"]
        attached.append(variable)
        kind = "image" if variable["type"] == "input_image" else "file"
        return f"(the {kind} '{match.group(1)}', attached below)"

    return PLACEHOLDER.sub(value, template), attached
