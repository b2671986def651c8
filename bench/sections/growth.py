"""Growth of history: chains and conversations of growing length, and their table.

At each depth, `previous_response_id` chains and conversations of twice
as many items are continued: the latency of a request, and the rows and
SQL statements it takes to load the history with the gateway's own code,
in this process, on the gateway's SQLite file.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from bench.markdown import section, table
from bench.services import BENCH_AUTHORIZATION, Service, backend_stats, http_call
from bench.targets import GATEWAY_BODY, MODEL, Target, load

if TYPE_CHECKING:
    from bench.run import Context

CONVERSATION_BATCH = 20


def run(context: Context) -> dict:
    """Continue chains and conversations of growing length: latency, queries, rows."""
    mode, gateway = context.mode, context.gateway
    rows = []
    tip, built = None, 0
    with _store_bound_to(gateway):
        for depth in mode.growth_depths:
            while built < depth:
                body = {"model": MODEL, "input": f"turn {built}", "previous_response_id": tip}
                status, answer = http_call(gateway.port, "POST", "/v1/responses", body)
                if status != 200:
                    raise RuntimeError(f"building the chain failed at {built}: {answer}")
                tip, built = answer["id"], built + 1
            chain_body = {**GATEWAY_BODY, "previous_response_id": tip}
            rows.append(_growth_row(context, "chain", depth, chain_body))
            conversation = _conversation_with(gateway, 2 * depth)
            conversation_body = {**GATEWAY_BODY, "conversation": conversation}
            rows.append(_growth_row(context, "conversation", depth, conversation_body))
            print(growth_line(rows[-2]), "|", growth_line(rows[-1]), flush=True)
    return {"growth": rows}


def _growth_row(context: Context, kind: str, depth: int, body: dict) -> dict:
    target = Target(kind, "/v1/responses", body, '"completed"')
    result = load(context.gateway, target, 1, duration=60, requests=context.mode.growth_requests)
    history = history_load(body)
    return {
        "kind": kind,
        "depth": depth,
        "items": history["rows"],
        "messages_sent": backend_stats(context.backend)["last_messages"],
        "latency_ms": result["latency_ms"],
        "errors": result["errors"],
        **history,
    }


def _conversation_with(gateway: Service, item_count: int) -> str:
    """A conversation holding `item_count` user/assistant messages."""
    items = [
        {"type": "message", "role": ("user", "assistant")[n % 2], "content": f"item {n}"}
        for n in range(item_count)
    ]
    status, conversation = http_call(gateway.port, "POST", "/v1/conversations", {})
    if status != 200:
        raise RuntimeError(f"could not create a conversation: {conversation}")
    for start in range(0, item_count, CONVERSATION_BATCH):
        batch = {"items": items[start : start + CONVERSATION_BATCH]}
        path = f"/v1/conversations/{conversation['id']}/items"
        status, answer = http_call(gateway.port, "POST", path, batch)
        if status != 200:
            raise RuntimeError(f"could not add conversation items: {answer}")
    return conversation["id"]


def history_load(body: dict) -> dict:
    """Load a request's history with the gateway's own code, counting SQL statements."""
    from app.auth import SERVER_SECRET, Passthrough, tokens
    from app.services.inputs import history_for
    from app.store import db, responses

    statements: list[str] = []
    with db.connection_context():
        # Whose the benchmark's history is: the owner its key stands for (as the gateway sees it).
        owner_key = tokens.derive(responses.shared_secret(SERVER_SECRET), tokens.PASSTHROUGH_OWNER)
        owner = Passthrough(owner_key).principal_for({"Authorization": BENCH_AUTHORIZATION}).owner
        db.connection().set_trace_callback(statements.append)
        started = time.perf_counter()
        items = history_for(owner, body)
        elapsed = time.perf_counter() - started
        db.connection().set_trace_callback(None)
    return {"rows": len(items), "queries": len(statements), "load_ms": round(elapsed * 1000, 2)}


@contextlib.contextmanager
def _store_bound_to(gateway: Service) -> Iterator[None]:
    """Bind the gateway's store module, in this process, to `gateway`'s SQLite file, meanwhile."""
    from app.config import load_settings
    from app.store import db, open_database

    path = gateway.env["SESSION_STORE_DSN"]
    database, _ = open_database(load_settings({"store_dsn": path}, environ={}))
    db.initialize(database)
    try:
        yield
    finally:
        db.initialize(None)  # the writes section binds it to files of its own


def growth_line(row: dict) -> str:
    """One measured depth of one kind of history, as the run prints it."""
    return (
        f"{row['kind']} depth {row['depth']}: p50={row['latency_ms']['p50']:.2f} ms "
        f"rows={row['rows']} queries={row['queries']}"
    )


def report(results: dict) -> list[str]:
    """Latency, rows read, SQL statements and messages sent at every depth."""
    return section("Growth of history", growth_table(results["growth"]))


def growth_table(rows: list[dict]) -> str:
    """One row per kind of history and depth."""
    return table(
        ["history", "depth", "p50 ms", "p99 ms", "rows read", "SQL statements", "load ms"]
        + ["messages sent"],
        [
            [
                row["kind"],
                row["depth"],
                row["latency_ms"]["p50"],
                row["latency_ms"]["p99"],
                row["rows"],
                row["queries"],
                row["load_ms"],
                row["messages_sent"],
            ]
            for row in rows
        ],
    )
