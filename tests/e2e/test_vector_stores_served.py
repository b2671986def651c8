"""Vector stores under gunicorn's gevent workers: ingestion in the background, file_search.

The ingester runs as a greenlet in each worker (started with it): a file
added through one worker is ingested by the workers' own ingesters, and
a streamed response searches it through the tool loop, all through the
real gunicorn process.
"""

from __future__ import annotations

import json
import time

import openai
import pytest

from tests import fakebackend as fb
from tests.events import assert_valid_event_stream
from tests.integration.helpers import MODEL, sse_events

pytestmark = pytest.mark.slow

WAIT_SECONDS = 30.0
NOTES = "The launch moved to Thursday because the venue flooded."


def test_files_are_ingested_by_the_workers_and_searched_in_a_stream(start_gateway, backend):
    gateway = start_gateway(workers=2)
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="sk-served-test", max_retries=0)
    file = client.files.create(file=("notes.txt", NOTES.encode()), purpose="assistants")
    store = client.vector_stores.create(name="notes", file_ids=[file.id])
    deadline = time.monotonic() + WAIT_SECONDS
    while (found := client.vector_stores.retrieve(store.id)).status != "completed":
        assert time.monotonic() < deadline, f"never ingested: {found.file_counts}"
        time.sleep(0.1)
    assert found.file_counts.completed == 1

    arguments = json.dumps({"queries": ["launch day"]})
    backend.enqueue(fb.tool_calls([{"name": "file_search", "arguments": arguments}]))
    backend.enqueue(fb.text("Thursday [1]."))
    with client.responses.with_streaming_response.create(
        model=MODEL,
        input="When is the launch?",
        tools=[{"type": "file_search", "vector_store_ids": [store.id]}],
        stream=True,
    ) as raw:
        events = sse_events(raw.iter_lines())
    response = assert_valid_event_stream(events)
    assert [item.type for item in response.output] == ["file_search_call", "message"]
    assert response.output[1].content[0].annotations[0].file_id == file.id
    assert NOTES in backend.chat_requests()[-1]["messages"][-1]["content"]
    assert "ERROR" not in gateway.log_text()
