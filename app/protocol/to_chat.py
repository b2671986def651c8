"""Responses request + replayed history -> a Chat Completions request body.

History is made valid for Chat backends on the way: every assistant tool
call is followed by its tool message (a placeholder when the output is
missing), outputs of unknown calls are dropped, reasoning rides on the
neighbouring assistant turn, and no empty assistant message is sent.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

MISSING_OUTPUT = "(no output was recorded for this tool call)"
LOCAL_SHELL_TOOL = "local_shell"
CUSTOM_INPUT_DESCRIPTION = "The raw input for this tool, as free-form text."
LOCAL_SHELL_PARAMETERS = {
    "type": "object",
    "properties": {
        "command": {"type": "array", "items": {"type": "string"}},
        "working_directory": {"type": "string"},
        "timeout_ms": {"type": "integer"},
        "env": {"type": "object", "additionalProperties": {"type": "string"}},
    },
    "required": ["command"],
}
ROLE_FOR_CHAT = {"developer": "system"}


@dataclass(frozen=True)
class ChatOptions:
    """What differs between Chat backends, for translation."""

    reasoning_field: str = "reasoning_content"
    max_tokens_field: str = "max_tokens"
    thinking_off: tuple[tuple[str, Any], ...] = ()


@dataclass
class ChatRequest:
    """The translated request, and what the translation had to leave out."""

    body: dict[str, Any]
    tool_kinds: dict[str, str] = field(default_factory=dict)
    dropped_tools: list[str] = field(default_factory=list)


def to_chat_request(
    request: dict[str, Any],
    items: list[dict[str, Any]],
    options: ChatOptions,
    *,
    stream: bool,
) -> ChatRequest:
    """Build the Chat Completions body for `request`, replaying `items` in order."""
    messages: list[dict[str, Any]] = []
    if request.get("instructions"):
        messages.append({"role": "system", "content": request["instructions"]})
    messages.extend(items_to_messages(items, options.reasoning_field))
    body: dict[str, Any] = {"model": request["model"], "messages": messages}
    chat = ChatRequest(body=body)
    _add_tools(request, chat)
    _add_sampling(request, body, options)
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return chat


def tool_kinds_of(tools: list[dict[str, Any]] | None) -> dict[str, str]:
    """Map each client tool name to its Responses tool type."""
    kinds = {}
    for tool in tools or ():
        if tool.get("type") in ("function", "custom"):
            kinds[tool["name"]] = tool["type"]
        elif tool.get("type") == "local_shell":
            kinds[LOCAL_SHELL_TOOL] = "local_shell"
    return kinds


def _add_tools(request: dict[str, Any], chat: ChatRequest) -> None:
    tools = []
    for tool in request.get("tools") or ():
        translated = _tool_to_chat(tool)
        if translated is None:
            chat.dropped_tools.append(tool["type"])
        else:
            tools.append(translated)
    chat.tool_kinds = tool_kinds_of(request.get("tools"))
    if not tools:
        return
    chat.body["tools"] = tools
    choice = _tool_choice_to_chat(request.get("tool_choice"))
    if choice is not None:
        chat.body["tool_choice"] = choice
    if request.get("parallel_tool_calls") is not None:
        chat.body["parallel_tool_calls"] = request["parallel_tool_calls"]


def _tool_to_chat(tool: dict[str, Any]) -> dict[str, Any] | None:
    kind = tool.get("type")
    if kind == "function":
        function = {"name": tool["name"], "parameters": tool.get("parameters") or _NO_PARAMETERS}
        if tool.get("description"):
            function["description"] = tool["description"]
        if tool.get("strict") is not None:
            function["strict"] = tool["strict"]
        return {"type": "function", "function": function}
    if kind == "custom":
        return _function(tool["name"], _custom_description(tool), _CUSTOM_PARAMETERS)
    if kind == "local_shell":
        return _function(
            LOCAL_SHELL_TOOL, "Run a command on the local machine.", LOCAL_SHELL_PARAMETERS
        )
    return None  # hosted tools: the backend cannot run them


_NO_PARAMETERS = {"type": "object", "properties": {}}
_CUSTOM_PARAMETERS = {
    "type": "object",
    "properties": {"input": {"type": "string", "description": CUSTOM_INPUT_DESCRIPTION}},
    "required": ["input"],
    "additionalProperties": False,
}


def _function(name: str, description: str, parameters: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {"name": name, "description": description, "parameters": parameters},
    }


def _custom_description(tool: dict[str, Any]) -> str:
    """A free-form tool's grammar, if any, is told to the model in the description."""
    description = tool.get("description") or ""
    fmt = tool.get("format") or {}
    if fmt.get("type") == "grammar" and fmt.get("definition"):
        syntax = fmt.get("syntax", "grammar")
        description += f"\n\nThe input must follow this {syntax} grammar:\n{fmt['definition']}"
    return description.strip() or CUSTOM_INPUT_DESCRIPTION


def _tool_choice_to_chat(choice: Any) -> Any:
    if choice is None or isinstance(choice, str):
        return choice
    if choice.get("type") in ("function", "custom"):
        return {"type": "function", "function": {"name": choice["name"]}}
    if choice.get("type") == "local_shell":
        return {"type": "function", "function": {"name": LOCAL_SHELL_TOOL}}
    if choice.get("type") == "allowed_tools":
        return "required" if choice.get("mode") == "required" else "auto"
    return "auto"


def _add_sampling(request: dict[str, Any], body: dict[str, Any], options: ChatOptions) -> None:
    for name in ("temperature", "top_p", "user"):
        if request.get(name) is not None:
            body[name] = request[name]
    if request.get("max_output_tokens") is not None:
        body[options.max_tokens_field] = request["max_output_tokens"]
    if request.get("top_logprobs"):
        body["logprobs"] = True
        body["top_logprobs"] = request["top_logprobs"]
    effort = (request.get("reasoning") or {}).get("effort")
    if effort:
        body["reasoning_effort"] = effort
    if effort == "none":
        body.update(options.thinking_off)
    response_format = _response_format((request.get("text") or {}).get("format"))
    if response_format:
        body["response_format"] = response_format


def _response_format(fmt: dict[str, Any] | None) -> dict[str, Any] | None:
    if not fmt or fmt.get("type") == "text":
        return None
    if fmt["type"] == "json_object":
        return {"type": "json_object"}
    schema = {"name": fmt.get("name") or "response", "schema": fmt.get("schema") or {}}
    for key in ("strict", "description"):
        if fmt.get(key) is not None:
            schema[key] = fmt[key]
    return {"type": "json_schema", "json_schema": schema}


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
