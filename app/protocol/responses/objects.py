"""The Responses API's objects: the `response` skeleton, its output items, usage, status.

Every dialect's translation builds its items here, so that the JSON path
and the event stream produce the same items for the same backend answer.
No backend's vocabulary appears here (app/protocol/chat/ has Chat's).
"""

from __future__ import annotations

import json
import time
from typing import Any

from app.protocol.ids import new_item_id

# Request fields the API echoes in the response, with the value it reports
# when the client did not send one.
ECHO_DEFAULTS: dict[str, Any] = {
    "background": False,
    "instructions": None,
    "max_output_tokens": None,
    "max_tool_calls": None,
    "metadata": {},
    "parallel_tool_calls": True,
    "previous_response_id": None,
    "prompt": None,
    "prompt_cache_key": None,
    "prompt_cache_retention": None,
    "safety_identifier": None,
    "service_tier": "auto",
    "store": True,
    "temperature": 1.0,
    "tool_choice": "auto",
    "tools": [],
    "top_logprobs": 0,
    "top_p": 1.0,
    "truncation": "disabled",
    "user": None,
}
# A response's status while it runs (a background one), and once it is over.
RUNNING_STATUSES = ("queued", "in_progress")
TERMINAL_STATUSES = ("completed", "incomplete", "failed", "cancelled")
DEFAULT_TEXT = {"format": {"type": "text"}, "verbosity": "medium"}
# Codes the API allows in `response.error.code` (openai ResponseError).
RESPONSE_ERROR_CODES = frozenset(
    {
        "server_error",
        "rate_limit_exceeded",
        "invalid_prompt",
        "data_residency_mismatch",
        "bio_policy",
        "misalignment_policy_violation",
        "vector_store_timeout",
        "invalid_image",
        "invalid_image_format",
        "invalid_base64_image",
        "invalid_image_url",
        "image_too_large",
        "image_too_small",
        "image_parse_error",
        "image_content_policy_violation",
        "invalid_image_mode",
        "image_file_too_large",
        "unsupported_image_media_type",
        "empty_image_file",
        "failed_to_download_image",
        "image_file_not_found",
    }
)


def new_response(request: dict[str, Any], response_id: str, created_at: int) -> dict[str, Any]:
    """Return the in-progress response object that echoes `request`."""
    response: dict[str, Any] = {
        "id": response_id,
        "object": "response",
        "created_at": created_at,
        "status": "in_progress",
        "completed_at": None,
        "error": None,
        "incomplete_details": None,
        "model": request["model"],
        "output": [],
        "usage": None,
    }
    for name, default in ECHO_DEFAULTS.items():
        value = request.get(name)
        response[name] = default if value is None else value
    response["text"] = {**DEFAULT_TEXT, **(request.get("text") or {})}
    response["reasoning"] = {"effort": None, "summary": None, **(request.get("reasoning") or {})}
    conversation = request.get("conversation")
    response["conversation"] = {"id": conversation} if conversation else None
    return response


def complete_response(
    response: dict[str, Any],
    output: list[dict[str, Any]],
    usage: dict[str, Any] | None,
    incomplete_reason: str | None,
) -> dict[str, Any]:
    """Fill in the terminal state of `response`: completed, or incomplete for `incomplete_reason`
    (`max_output_tokens`, `content_filter`)."""
    response["output"] = output
    response["usage"] = usage or empty_usage()
    if incomplete_reason:
        response["status"] = "incomplete"
        response["incomplete_details"] = {"reason": incomplete_reason}
    else:
        response["status"] = "completed"
    response["completed_at"] = int(time.time())
    return response


def fail_response(
    response: dict[str, Any], output: list[dict[str, Any]], error: dict[str, Any]
) -> dict[str, Any]:
    """Mark `response` failed with a filled error object.

    The API allows only its own codes in `response.error.code`; the gateway's
    more specific reason stays in the message.
    """
    code = error.get("code")
    if code not in RESPONSE_ERROR_CODES:
        rate_limited = error.get("type") == "rate_limit_error"
        code = "rate_limit_exceeded" if rate_limited else "server_error"
    response["output"] = output
    response["status"] = "failed"
    response["error"] = {
        "code": code,
        "message": error["message"],
    }
    return response


def usage_object(
    input_tokens: int = 0,
    output_tokens: int = 0,
    cached_tokens: int = 0,
    cache_write_tokens: int = 0,
    reasoning_tokens: int = 0,
    total_tokens: int | None = None,
) -> dict[str, Any]:
    """A Responses `usage` object, with every detail present."""
    return {
        "input_tokens": input_tokens,
        "input_tokens_details": {
            "cached_tokens": cached_tokens,
            "cache_write_tokens": cache_write_tokens,
        },
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": reasoning_tokens},
        "total_tokens": input_tokens + output_tokens if total_tokens is None else total_tokens,
    }


def empty_usage() -> dict[str, Any]:
    return usage_object()


def message_item(
    text: str, status: str = "completed", item_id: str | None = None, refusal: bool = False
) -> dict:
    """Return an assistant `message` output item holding `text` (or a refusal)."""
    return {
        "id": item_id or new_item_id("message"),
        "type": "message",
        "role": "assistant",
        "status": status,
        "content": [refusal_part(text) if refusal else output_text_part(text)],
    }


def output_text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def refusal_part(text: str) -> dict[str, Any]:
    return {"type": "refusal", "refusal": text}


def reasoning_item(text: str, item_id: str | None = None) -> dict[str, Any]:
    """Return a `reasoning` output item holding the backend's reasoning text."""
    return {
        "id": item_id or new_item_id("reasoning"),
        "type": "reasoning",
        "summary": [],
        "content": [{"type": "reasoning_text", "text": text}],
        "status": "completed",
    }


def tool_call_item(
    kind: str, name: str, call_id: str, arguments: str, item_id: str | None = None
) -> dict[str, Any]:
    """Return the output item for a Chat tool call, by the client tool's kind."""
    if kind == "custom":
        item_id = item_id or new_item_id("custom_tool_call")
        return {
            "id": item_id,
            "type": "custom_tool_call",
            "call_id": call_id,
            "name": name,
            "input": custom_input(arguments),
        }
    if kind == "local_shell":
        return {
            "id": item_id or new_item_id("local_shell_call"),
            "type": "local_shell_call",
            "call_id": call_id,
            "action": local_shell_action(arguments),
            "status": "completed",
        }
    return {
        "id": item_id or new_item_id("function_call"),
        "type": "function_call",
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
        "status": "completed",
    }


def custom_input(arguments: str) -> str:
    """A free-form tool's input travels as `{"input": "…"}`; take it out again."""
    try:
        parsed = json.loads(arguments)
    except ValueError:
        return arguments
    if isinstance(parsed, dict) and isinstance(parsed.get("input"), str):
        return parsed["input"]
    return arguments


def local_shell_action(arguments: str) -> dict[str, Any]:
    try:
        parsed = json.loads(arguments)
    except ValueError:
        parsed = {}
    if not isinstance(parsed, dict):
        parsed = {}
    command = parsed.get("command")
    if isinstance(command, str):
        command = ["bash", "-lc", command]
    return {
        "type": "exec",
        "command": [str(part) for part in command or ()],
        "env": parsed.get("env") if isinstance(parsed.get("env"), dict) else {},
        "timeout_ms": parsed.get("timeout_ms"),
        "working_directory": parsed.get("working_directory"),
        "user": None,
    }


def list_object(items: list[dict[str, Any]], has_more: bool) -> dict[str, Any]:
    """The API's paginated list shape around `items`."""
    return {
        "object": "list",
        "data": items,
        "first_id": items[0]["id"] if items else None,
        "last_id": items[-1]["id"] if items else None,
        "has_more": has_more,
    }
