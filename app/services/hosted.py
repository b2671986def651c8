"""Hosted tools the gateway runs itself inside a response: `file_search` so far.

`HostedTools.of` reads them from a request (every vector store named must
be the caller's: else a 404 before anything is sent) and gives the backend
a request in which each is a function the model can call
(`backend_request`). When a turn of the model ends with calls of those
functions, `run` searches and makes the `file_search_call` item and its
events (the JSON path drops the events), and returns what the next turn
must be told: the call and its results. A search that fails shows as a
`failed` call, and the model is told so. The response loop (streamed, JSON and
background alike) goes on until the model answers without calling one, or
`max_tool_calls` calls have run: the turn after that may call no tool.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from app.compact_json import dumps
from app.errors import GatewayError, InvalidRequest, NotFound
from app.protocol.ids import new_item_id
from app.protocol.responses import file_search
from app.protocol.responses.events import Events, ResponseEmitter
from app.protocol.vector_stores import check_file_search_tool
from app.services.context import RequestContext, ServiceContext
from app.services.search import search_stores
from app.store import db
from app.store import vector_stores as store

log = logging.getLogger(__name__)

DEFAULT_MAX_TOOL_CALLS = 10
RESULTS_INCLUDE = "file_search_call.results"
SEARCH_FAILED = "The search failed: {}"


@dataclass
class HostedTools:
    """One request's hosted tools: their settings, and what running them has found."""

    services: ServiceContext
    file_search: dict[str, Any]
    include_results: bool
    max_calls: int
    calls: int = 0
    # The file of each passage shown to the model, numbered from 1 across the response.
    sources: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def of(
        cls, services: ServiceContext, context: RequestContext, request: dict[str, Any]
    ) -> HostedTools | None:
        """The request's hosted tools, checked; None if it has none the gateway runs."""
        tools = [t for t in request.get("tools") or () if t.get("type") == file_search.FILE_SEARCH]
        if not tools:
            return None
        if len(tools) > 1:
            raise InvalidRequest("Only one file_search tool may be given.", param="tools")
        names = {
            t.get("name") for t in request.get("tools") or () if t.get("type") != "file_search"
        }
        if file_search.FILE_SEARCH in names:
            raise InvalidRequest(
                "A tool named 'file_search' clashes with the file_search tool.", param="tools"
            )
        tool = tools[0]
        check_file_search_tool(tool)
        for store_id in tool["vector_store_ids"]:
            if store.get_store(context.owner, store_id) is None:
                raise NotFound(
                    f"No vector store found with id '{store_id}'.",
                    param="tools.vector_store_ids",
                )
        include = RESULTS_INCLUDE in (request.get("include") or ())
        limit = request.get("max_tool_calls") or DEFAULT_MAX_TOOL_CALLS
        return cls(services, tool, include, limit)

    @property
    def exhausted(self) -> bool:
        return self.calls >= self.max_calls

    def backend_request(self, request: dict[str, Any]) -> dict[str, Any]:
        """`request` as the backend gets it: file_search a function the model may call (or,
        once `max_tool_calls` have run, no tool may be called)."""
        tools = [
            file_search.FUNCTION_TOOL if tool.get("type") == file_search.FILE_SEARCH else tool
            for tool in request.get("tools") or ()
        ]
        choice = request.get("tool_choice")
        if isinstance(choice, dict) and choice.get("type") == file_search.FILE_SEARCH:
            choice = {"type": "function", "name": file_search.FILE_SEARCH}
        if self.exhausted:
            choice = "none"
        return {**request, "tools": tools, "tool_choice": choice}

    def mark(self, outgoing: Any) -> Any:
        """Tell the backend's translation which calls are the gateway's to run (so a stream
        shows none of them as function calls)."""
        outgoing.tool_kinds[file_search.FILE_SEARCH] = "hosted"
        return outgoing

    def run(
        self, call: dict[str, Any], emitter: ResponseEmitter, fallback_query: str
    ) -> tuple[Events, list[dict[str, Any]]]:
        """Run one call the model made: its events (shown as a `file_search_call`), and the
        items the next turn is told (the call, and its output)."""
        queries = file_search.queries_of(call.get("arguments", ""), fallback_query)
        item = file_search.call_item(new_item_id("file_search_call"), queries)
        events, index = emitter.begin_item(item)
        events.append(emitter.item_event("response.file_search_call.in_progress", item, index))
        self.calls += 1
        events.append(emitter.item_event("response.file_search_call.searching", item, index))
        try:
            results = self._search(queries)
        except GatewayError as exc:
            log.warning("file_search failed: %s", exc.message)
            done = {**item, "status": "failed"}
            output = SEARCH_FAILED.format(exc.message)
        else:
            first = len(self.sources) + 1
            self.sources += [(r["file_id"], r["filename"]) for r in results]
            output = file_search.results_text(results, first)
            done = {**item, "status": "completed"}
            if self.include_results:
                done["results"] = results
            events.append(emitter.item_event("response.file_search_call.completed", item, index))
        events += emitter.end_item(done, index)
        arguments = {"queries": queries}
        told = [
            {
                "type": "function_call",
                "call_id": call["call_id"],
                "name": file_search.FILE_SEARCH,
                "arguments": dumps(arguments),
            },
            {"type": "function_call_output", "call_id": call["call_id"], "output": output},
        ]
        return events, told

    def annotate(self, text: str) -> list[dict[str, Any]]:
        return file_search.citations(text, self.sources)

    def _search(self, queries: list[str]) -> list[dict[str, Any]]:
        tool = self.file_search
        with db.connection_context():  # a stream's generator has no request's connection
            found = search_stores(tool["vector_store_ids"], queries, tool, self.services.embeddings)
        return [
            {
                "file_id": r["file_id"],
                "filename": r["filename"],
                "score": r["score"],
                "attributes": r["attributes"],
                "text": r["content"][0]["text"],
            }
            for r in found
        ]
