"""The Responses API `response` object: skeleton, output items, usage, status.

Shared by the JSON path (`from_chat_completion`) and the stream translator,
so that both produce the same items for the same backend answer.
"""

from __future__ import annotations

import json
import time
from typing import Any

from app.protocol.ids import new_call_id, new_item_id

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
INCOMPLETE_REASONS = {"length": "max_output_tokens", "content_filter": "content_filter"}


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


def finish_response(
    response: dict[str, Any],
    output: list[dict[str, Any]],
    usage: dict[str, Any] | None,
    finish_reason: str | None,
) -> dict[str, Any]:
    """Fill in the terminal state of `response` from the backend's finish reason."""
    response["output"] = output
    response["usage"] = usage_from_chat(usage)
    reason = INCOMPLETE_REASONS.get(finish_reason or "")
    if reason:
        response["status"] = "incomplete"
        response["incomplete_details"] = {"reason": reason}
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


def usage_from_chat(usage: dict[str, Any] | None) -> dict[str, Any]:
    """Translate Chat `usage` into Responses `usage`, with every detail present."""
    usage = usage or {}
    prompt = int(usage.get("prompt_tokens") or 0)
    completion = int(usage.get("completion_tokens") or 0)
    prompt_details = usage.get("prompt_tokens_details") or {}
    completion_details = usage.get("completion_tokens_details") or {}
    return {
        "input_tokens": prompt,
        "input_tokens_details": {
            "cached_tokens": int(prompt_details.get("cached_tokens") or 0),
            "cache_write_tokens": int(prompt_details.get("cache_write_tokens") or 0),
        },
        "output_tokens": completion,
        "output_tokens_details": {
            "reasoning_tokens": int(completion_details.get("reasoning_tokens") or 0),
        },
        "total_tokens": int(usage.get("total_tokens") or prompt + completion),
    }


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


def from_chat_completion(
    response: dict[str, Any],
    completion: dict[str, Any],
    tool_kinds: dict[str, str],
    reasoning_field: str,
) -> dict[str, Any]:
    """Complete `response` from a non-streaming Chat completion."""
    choices = completion.get("choices") or [{}]
    choice = choices[0] or {}
    message = choice.get("message") or {}
    finish_reason = choice.get("finish_reason")
    output = []
    reasoning = message.get(reasoning_field) or message.get("reasoning_content")
    if reasoning or message.get("reasoning"):
        output.append(reasoning_item(reasoning or message["reasoning"]))
    status = "incomplete" if finish_reason in INCOMPLETE_REASONS else "completed"
    if message.get("content"):
        output.append(message_item(message["content"], status))
    if message.get("refusal"):
        output.append(message_item(message["refusal"], status, refusal=True))
    for call in message.get("tool_calls") or ():
        function = call.get("function") or {}
        name = function.get("name") or ""
        output.append(
            tool_call_item(
                tool_kinds.get(name, "function"),
                name,
                call.get("id") or new_call_id(),
                function.get("arguments") or "",
            )
        )
    return finish_response(response, output, completion.get("usage"), finish_reason)
