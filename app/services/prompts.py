"""Use case: the Prompts API, as the caller's own, and a response's `prompt` rendered."""

from __future__ import annotations

import time
from typing import Any

from app.errors import NotFound
from app.protocol.ids import new_id, new_item_id
from app.protocol.prompts import prompt_object, reference, render, version_object
from app.protocol.responses.objects import list_object
from app.services.context import RequestContext
from app.store import prompts as store


def create_prompt(context: RequestContext, body: dict[str, Any]) -> dict[str, Any]:
    prompt = {
        "id": new_id("pmpt"),
        "name": body["name"],
        "description": body.get("description"),
        "metadata": body.get("metadata") or {},
        "created_at": int(time.time()),
        "default_version": 1,
        "latest_version": 1,
    }
    store.create_prompt(context.owner, prompt, body["template"])
    return get_prompt(context, prompt["id"])


def get_prompt(
    context: RequestContext, prompt_id: str, version: int | None = None
) -> dict[str, Any]:
    prompt = _prompt(context, prompt_id)
    return prompt_object(prompt, _version(prompt, version))


def list_prompts(context: RequestContext, page: dict[str, Any]) -> dict[str, Any]:
    prompts, more = store.list_prompts(context.owner, **page)
    return list_object([prompt_object(p, _version(p, None)) for p in prompts], more)


def update_prompt(context: RequestContext, prompt_id: str, body: dict[str, Any]) -> dict[str, Any]:
    """A new version, made from `body["version"]` (the latest, else a 409)."""
    prompt = _prompt(context, prompt_id)
    based_on = _version(prompt, body["version"])
    template = body.get("template", based_on["template"])
    changes = {key: body[key] for key in ("name", "description", "metadata") if key in body}
    if "metadata" in changes:
        changes["metadata"] = changes["metadata"] or {}
    version = store.add_version(
        context.owner, prompt_id, body["version"], template, changes, int(time.time())
    )
    return get_prompt(context, prompt_id, version)


def list_versions(context: RequestContext, prompt_id: str) -> dict[str, Any]:
    prompt = _prompt(context, prompt_id)
    versions = [
        version_object(prompt_id, v, prompt["default_version"])
        for v in store.list_versions(prompt_id)
    ]
    return {"object": "list", "data": versions, "has_more": False}


def set_default(context: RequestContext, prompt_id: str, body: dict[str, Any]) -> dict[str, Any]:
    prompt = _prompt(context, prompt_id)
    _version(prompt, body["version"])
    store.set_default(context.owner, prompt_id, body["version"])
    return get_prompt(context, prompt_id)


def delete_prompt(context: RequestContext, prompt_id: str) -> dict[str, Any]:
    if not store.delete_prompt(context.owner, prompt_id):
        raise _not_found(prompt_id)
    return {"id": prompt_id, "object": "prompt.deleted", "deleted": True}


def rendered(context: RequestContext, value: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A response's `prompt`: the reference as the response echoes it (its version named),
    and the items the model is given first (the rendered template; attached parts)."""
    prompt_id, version, variables = reference(value)
    prompt = store.get_prompt(context.owner, prompt_id)
    if prompt is None:
        raise NotFound(f"Prompt with id '{prompt_id}' not found.", param="prompt.id")
    template = _version(prompt, version, param="prompt.version")
    text, attached = render(template["template"], variables)
    items = [_message("developer", [{"type": "input_text", "text": text}])]
    if attached:
        items.append(_message("user", attached))
    echoed = {name: _as_echoed(variable) for name, variable in variables.items()}
    echo = {"id": prompt_id, "version": str(template["version"]), "variables": echoed or None}
    return echo, items


def _as_echoed(variable: Any) -> Any:
    """A variable as the response shows it (an image part with its `detail`, as the API's)."""
    if isinstance(variable, dict) and variable["type"] == "input_image":
        return {"detail": "auto", **variable}
    return variable


def _message(role: str, content: list[dict[str, Any]]) -> dict[str, Any]:
    return {"type": "message", "id": new_item_id("message"), "role": role, "content": content}


def _prompt(context: RequestContext, prompt_id: str) -> dict[str, Any]:
    prompt = store.get_prompt(context.owner, prompt_id)
    if prompt is None:
        raise _not_found(prompt_id)
    return prompt


def _version(prompt: dict[str, Any], version: int | None, param: str = "version") -> dict[str, Any]:
    number = prompt["default_version"] if version is None else version
    found = store.get_version(prompt["id"], number)
    if found is None:
        raise NotFound(
            f"Prompt {prompt['id']} has no version {number}.", param=param, code="version_not_found"
        )
    return found


def _not_found(prompt_id: str) -> NotFound:
    return NotFound(f"Prompt with id '{prompt_id}' not found.", param="prompt_id")
