"""A Chat Completions answer as the Responses API sees it: output items, usage, how it ended.

Chat's vocabulary ends here: `finish_reason` becomes the Responses
`incomplete_details.reason`, `prompt_tokens` the `input_tokens` of a
Responses `usage`, a message's content, refusal, reasoning and tool calls
its output items.
"""

from __future__ import annotations

from typing import Any

from app.protocol.ids import new_call_id
from app.protocol.responses.objects import (
    message_item,
    reasoning_item,
    tool_call_item,
    usage_object,
)

# Chat's finish reasons that leave a response incomplete, and the reason the API gives.
INCOMPLETE_REASONS = {"length": "max_output_tokens", "content_filter": "content_filter"}


def incomplete_reason(finish_reason: str | None) -> str | None:
    """The Responses reason an answer that ended so is incomplete (None: it is complete)."""
    return INCOMPLETE_REASONS.get(finish_reason or "")


def usage_from_chat(usage: dict[str, Any] | None) -> dict[str, Any]:
    """Translate Chat `usage` into Responses `usage`, with every detail present."""
    usage = usage or {}
    prompt = int(usage.get("prompt_tokens") or 0)
    completion = int(usage.get("completion_tokens") or 0)
    prompt_details = usage.get("prompt_tokens_details") or {}
    completion_details = usage.get("completion_tokens_details") or {}
    return usage_object(
        input_tokens=prompt,
        output_tokens=completion,
        cached_tokens=int(prompt_details.get("cached_tokens") or 0),
        cache_write_tokens=int(prompt_details.get("cache_write_tokens") or 0),
        reasoning_tokens=int(completion_details.get("reasoning_tokens") or 0),
        total_tokens=int(usage.get("total_tokens") or prompt + completion),
    )


def answer_of(
    completion: dict[str, Any], tool_kinds: dict[str, str], reasoning_field: str
) -> tuple[list[dict[str, Any]], dict[str, Any], str | None]:
    """A non-streaming completion's output items, usage and incomplete reason."""
    choices = completion.get("choices") or [{}]
    choice = choices[0] or {}
    message = choice.get("message") or {}
    reason = incomplete_reason(choice.get("finish_reason"))
    status = "incomplete" if reason else "completed"
    output = []
    reasoning = message.get(reasoning_field) or message.get("reasoning_content")
    if reasoning or message.get("reasoning"):
        output.append(reasoning_item(reasoning or message["reasoning"]))
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
    return output, usage_from_chat(completion.get("usage")), reason
