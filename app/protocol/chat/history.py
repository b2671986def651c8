"""Responses items (replayed history and new input) as Chat Completions messages.

History is made valid for Chat backends on the way: every assistant tool
call is followed by its tool message (a placeholder when the output is
missing), outputs of unknown calls are dropped, reasoning rides on the
neighbouring assistant turn, and no empty assistant message is sent.
"""

from __future__ import annotations

import json
from typing import Any

from app.protocol.responses.file_search import FILE_SEARCH, results_text

MISSING_OUTPUT = "(no output was recorded for this tool call)"
LOCAL_SHELL_TOOL = "local_shell"
ROLE_FOR_CHAT = {"developer": "system"}


def items_to_messages(items: list[dict[str, Any]], reasoning_field: str) -> list[dict[str, Any]]:
    """Turn Responses items into Chat messages, repaired for strict backends."""
    builder = _MessageBuilder(reasoning_field)
    for item in items:
        builder.add(item)
    return _repair_tool_messages(builder.finish())


class _MessageBuilder:
    """Folds consecutive assistant-side items into one assistant message."""

    def __init__(self, reasoning_field: str) -> None:
        self.reasoning_field = reasoning_field
        self.messages: list[dict[str, Any]] = []
        self.assistant: dict[str, Any] | None = None
        self.pending_reasoning: list[str] = []

    def add(self, item: dict[str, Any]) -> None:
        kind = item.get("type", "message")
        if kind == "message" and item.get("role") == "assistant":
            self._assistant_turn()["content"].append(content_text(item["content"]))
        elif kind == "message":
            self._flush()
            self.pending_reasoning = []
            role = ROLE_FOR_CHAT.get(item["role"], item["role"])
            self.messages.append({"role": role, "content": _user_content(item["content"])})
        elif kind == "reasoning":
            self._reasoning(item)
        elif kind in ("function_call", "custom_tool_call", "local_shell_call"):
            self._assistant_turn()["tool_calls"].append(_tool_call(item))
        elif kind in ("function_call_output", "custom_tool_call_output"):
            self._tool_output(item["call_id"], item["output"])
        elif kind == "local_shell_call_output":
            self._tool_output(item["id"], item["output"])
        elif kind == "file_search_call":  # the gateway ran it: its call and its results
            arguments = json.dumps({"queries": item.get("queries") or []})
            call = {"name": FILE_SEARCH, "arguments": arguments}
            self._assistant_turn()["tool_calls"].append(
                {"id": item["id"], "type": "function", "function": call}
            )
            self._tool_output(item["id"], results_text(item.get("results")))

    def _assistant_turn(self) -> dict[str, Any]:
        if self.assistant is None:
            self.assistant = {"content": [], "tool_calls": [], "reasoning": self.pending_reasoning}
            self.pending_reasoning = []
        return self.assistant

    def _reasoning(self, item: dict[str, Any]) -> None:
        parts = item.get("content") or item.get("summary") or []
        text = "".join(part.get("text", "") for part in parts)
        if not text:
            return
        if self.assistant is not None and not self.assistant["content"]:
            self.assistant["reasoning"].append(text)
        else:
            self._flush()
            self.pending_reasoning.append(text)

    def _tool_output(self, call_id: str, output: Any) -> None:
        self._flush()
        self.messages.append(
            {"role": "tool", "tool_call_id": call_id, "content": content_text(output)}
        )

    def _flush(self) -> None:
        turn, self.assistant = self.assistant, None
        if turn is None:
            return
        text = "\n".join(part for part in turn["content"] if part)
        message: dict[str, Any] = {"role": "assistant", "content": text or None}
        if turn["tool_calls"]:
            message["tool_calls"] = turn["tool_calls"]
        if turn["reasoning"]:
            message[self.reasoning_field] = "\n".join(turn["reasoning"])
        if message["content"] is not None or turn["tool_calls"]:
            self.messages.append(message)

    def finish(self) -> list[dict[str, Any]]:
        self._flush()
        return self.messages


def _tool_call(item: dict[str, Any]) -> dict[str, Any]:
    kind = item["type"]
    if kind == "function_call":
        name, arguments = item["name"], item["arguments"]
    elif kind == "custom_tool_call":
        name, arguments = item["name"], json.dumps({"input": item["input"]})
    else:
        action = {k: v for k, v in item["action"].items() if k != "type" and v is not None}
        name, arguments = LOCAL_SHELL_TOOL, json.dumps(action)
    return {
        "id": item["call_id"],
        "type": "function",
        "function": {"name": name, "arguments": arguments},
    }


def content_text(content: Any) -> str:
    """Flatten message content (a string or parts) to its text."""
    if isinstance(content, str):
        return content
    texts = []
    for part in content or ():
        text = part.get("text", part.get("refusal"))
        if isinstance(text, str):
            texts.append(text)
    return "\n".join(texts)


def _user_content(content: Any) -> Any:
    """Text-only content becomes a string (every backend takes that); else Chat parts."""
    if isinstance(content, str):
        return content
    if all(part.get("type") in ("input_text", "output_text", "text") for part in content):
        return content_text(content)
    return [chat_part for part in content if (chat_part := _chat_part(part))]


def _chat_part(part: dict[str, Any]) -> dict[str, Any] | None:
    kind = part.get("type")
    if kind == "input_image" and part.get("image_url"):
        image = {"url": part["image_url"]}
        if part.get("detail") in ("low", "high", "auto"):
            image["detail"] = part["detail"]
        return {"type": "image_url", "image_url": image}
    if kind == "input_file" and part.get("file_data"):
        file = {"file_data": part["file_data"]}
        if part.get("filename"):
            file["filename"] = part["filename"]
        return {"type": "file", "file": file}
    if "text" in part:
        return {"type": "text", "text": part["text"]}
    return None


def _repair_tool_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    outputs: dict[str, dict[str, Any]] = {}
    for message in messages:
        if message["role"] == "tool":
            outputs.setdefault(message["tool_call_id"], message)
    repaired = []
    for message in messages:
        if message["role"] == "tool":
            continue
        repaired.append(message)
        for call in message.get("tool_calls", ()):
            placeholder = {"role": "tool", "tool_call_id": call["id"], "content": MISSING_OUTPUT}
            repaired.append(outputs.pop(call["id"], placeholder))
    return repaired
