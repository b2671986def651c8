"""The Agents SDK (openai-agents) runs a tool-using agent through the gateway.

The agent's `AsyncOpenAI` client talks HTTP to the gateway served on a
loopback port; the fake backend first asks for the tool, then answers.
Runs non-streamed, streamed, and chained by `previous_response_id`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from agents import (
    Agent,
    OpenAIResponsesModel,
    RawResponsesStreamEvent,
    Runner,
    function_tool,
    set_tracing_disabled,
)

from tests import fakebackend as fb
from tests.conftest import TEST_KEY
from tests.events import validate_event
from tests.integration.helpers import MODEL, retrieve, serve_in_thread

FORECAST = "Sunny, 24 C in Paris"
FINAL_TEXT = "It is sunny and 24 C in Paris."
INSTRUCTIONS = "Answer weather questions with the tool."
SYSTEM = {"role": "system", "content": INSTRUCTIONS}
USER = {"role": "user", "content": "Weather in Paris?"}
MODES = ["run", "run_streamed", "run_chained"]


@pytest.fixture
def gateway_url(app: Any) -> Iterator[str]:
    with serve_in_thread(app) as url:
        yield url


@pytest.fixture(autouse=True)
def no_tracing() -> Iterator[None]:
    set_tracing_disabled(True)
    yield


def weather_agent(client: openai.AsyncOpenAI, calls: list[str]) -> Agent:
    """An agent whose one tool records each city it is asked about."""

    @function_tool
    def get_weather(city: str) -> str:
        """Current weather of a city."""
        calls.append(city)
        return FORECAST

    return Agent(
        name="weather",
        instructions=INSTRUCTIONS,
        model=OpenAIResponsesModel(model=MODEL, openai_client=client),
        tools=[get_weather],
    )


async def run_agent(base_url: str, mode: str, calls: list[str]) -> tuple[Any, list[dict]]:
    """Run the agent once in `mode`; return its result and the raw stream events seen."""
    client = openai.AsyncOpenAI(base_url=base_url, api_key=TEST_KEY, max_retries=0, timeout=20)
    agent = weather_agent(client, calls)
    events: list[dict] = []
    try:
        if mode == "run_streamed":
            result = Runner.run_streamed(agent, "Weather in Paris?")
            async for event in result.stream_events():
                if isinstance(event, RawResponsesStreamEvent):
                    events.append(event.data.to_dict())
        else:
            chained = mode == "run_chained"
            result = await Runner.run(agent, "Weather in Paris?", auto_previous_response_id=chained)
    finally:
        await client.close()
    return result, events


@pytest.mark.parametrize("mode", MODES)
def test_agent_runs_its_tool_through_the_gateway(gateway_url, sdk, backend, mode):
    backend.enqueue(
        fb.tool_calls(
            [{"id": "call_agent", "name": "get_weather", "arguments": {"city": "Paris"}}]
        ),
        fb.text(FINAL_TEXT),
    )
    calls: list[str] = []
    result, events = asyncio.run(run_agent(gateway_url, mode, calls))

    assert calls == ["Paris"]
    assert result.final_output == FINAL_TEXT
    first, second = backend.chat_requests()
    assert first["messages"] == [SYSTEM, USER]
    assert [tool["function"]["name"] for tool in first["tools"]] == ["get_weather"]
    assert second["messages"][:2] == [SYSTEM, USER]
    assistant, tool = second["messages"][2:]
    [call] = assistant["tool_calls"]
    assert call["id"] == "call_agent"
    assert json.loads(call["function"]["arguments"]) == {"city": "Paris"}
    assert tool == {"role": "tool", "tool_call_id": "call_agent", "content": FORECAST}
    last = retrieve(sdk, result.last_response_id)
    assert last["output"][0]["content"][0]["text"] == FINAL_TEXT
    assert (last["previous_response_id"] is not None) == (mode == "run_chained")
    for event in events:
        validate_event(event)
    if mode == "run_streamed":
        assert [e["type"] for e in events].count("response.completed") == 2
