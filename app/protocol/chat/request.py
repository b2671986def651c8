"""A Responses request, with the history it continues, as a Chat Completions request body.

Tools become Chat functions (a `custom` tool a function with one string
argument, `local_shell` a function of its own), hosted tools the backend
cannot run are left out and named; sampling, reasoning effort, output
limits and `text.format` become their Chat fields. The history's items
become messages in app/protocol/chat/history.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from app.protocol.chat.history import LOCAL_SHELL_TOOL, items_to_messages

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
