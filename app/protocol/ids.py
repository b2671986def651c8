"""Identifiers in the shapes the OpenAI API uses (`resp_…`, `msg_…`, `fc_…`)."""

from __future__ import annotations

import secrets

ID_BYTES = 24
ITEM_PREFIXES = {
    "message": "msg",
    "function_call": "fc",
    "function_call_output": "fco",
    "custom_tool_call": "ctc",
    "custom_tool_call_output": "ctco",
    "local_shell_call": "lsh",
    "local_shell_call_output": "lsho",
    "reasoning": "rs",
}


def new_id(prefix: str) -> str:
    """Return a fresh random id such as `resp_3f…`."""
    return f"{prefix}_{secrets.token_hex(ID_BYTES)}"


def new_item_id(item_type: str) -> str:
    """Return a fresh id for an item of `item_type`."""
    return new_id(ITEM_PREFIXES.get(item_type, "item"))


def new_call_id() -> str:
    """Return a fresh tool call id, for backends that send none."""
    return new_id("call")
