"""Queries about stored responses and their items.

Every write is one short transaction; nothing here holds a transaction
across network I/O. A chain of `previous_response_id` is read with one
recursive query, whatever its depth. A caller's reads and writes name its
`Owner`, and reads see only what it owns and retention keeps
(app/store/scope.py); a write gives what it stores to that owner. A
background response carries a lease its runner renews; one whose lease ran
out (its worker died) is failed here, once, with a terminal event its
followers read.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import time
from collections.abc import Callable
from typing import Any

from peewee import IntegrityError

from app.auth.principal import Owner
from app.compact_json import dumps
from app.protocol.responses.objects import RUNNING_STATUSES
from app.store import scope
from app.store.models import (
    CONVERSATION,
    INPUT,
    OUTPUT,
    RESPONSE_SLOTS,
    GatewaySecret,
    StoredConversation,
    StoredEvent,
    StoredItem,
    StoredResponse,
    db,
)
from app.store.writes import insert_rows, writes

# The chain's every response must be the caller's and kept (scope.chain_conditions):
# it ends at the first that is not. Its items share their response's owner.
CHAIN_SQL = """
WITH RECURSIVE chain(id, prev, depth) AS (
    SELECT id, previous_response_id, 0 FROM responses WHERE id = {p}{anchor}
    UNION ALL
    SELECT r.id, r.previous_response_id, c.depth + 1
    FROM responses r JOIN chain c ON r.id = c.prev{ancestor}
)
SELECT i.body FROM chain c
LEFT JOIN items i ON i.parent_id = c.id AND i.slot IN ('input', 'output')
ORDER BY c.depth DESC, i.seq
"""
# A runner may still record how it ended after a cancel; a failed (reaped) one may not.
FINISHABLE = (*RUNNING_STATUSES, "cancelled")


def item_rows(
    owner: Owner, parent_id: str, slot: str, items: list[dict[str, Any]], now: int
) -> list[dict]:
    """Rows for `insert_rows(StoredItem, …)`, in the order given."""
    return [
        {
            "parent_id": parent_id,
            "slot": slot,
            "item_id": item["id"],
            "created_at": now,
            "body": dumps(item),
            "tenant_id": owner.tenant_id,
            "owner_id": owner.owner_id,
            "project_id": owner.project_id,
        }
        for item in items
    ]


def save_response(
    owner: Owner,
    response: dict[str, Any],
    input_items: list[dict[str, Any]],
    conversation_id: str | None = None,
) -> None:
    """Store a finished response with its input and output, in one transaction."""
    items = item_rows(owner, response["id"], INPUT, input_items, _now())
    items += _outcome_rows(owner, response, input_items, conversation_id)
    _insert(_response_row(owner, response, conversation_id), items, conversation_id)


def start_response(
    owner: Owner,
    response: dict[str, Any],
    input_items: list[dict[str, Any]],
    conversation_id: str | None,
    lease_until: float,
) -> None:
    """Store a background response that has not run yet, with its input, leased to its runner."""
    items = item_rows(owner, response["id"], INPUT, input_items, _now())
    _insert(_response_row(owner, response, conversation_id, lease_until), items, None)


@writes
def _insert(
    response_row: dict[str, Any], items: list[dict[str, Any]], conversation_id: str | None
) -> None:
    """Rows are built before the transaction: the write lock is held only to insert."""
    insert_rows(StoredResponse, [response_row])
    insert_rows(StoredItem, items)
    touch_conversation(conversation_id, response_row["updated_at"])


def finish_response(
    owner: Owner,
    response: dict[str, Any],
    input_items: list[dict[str, Any]],
    conversation_id: str | None,
) -> None:
    """Record how a background response ended, with its output (unless it was reaped)."""
    _finish(
        response["id"],
        response["status"],
        dumps(response),
        _outcome_rows(owner, response, input_items, conversation_id),
        conversation_id,
    )


@writes
def _finish(
    response_id: str,
    status: str,
    body: str,
    items: list[dict[str, Any]],
    conversation_id: str | None = None,
    lease_until: float | None = None,
) -> bool:
    now = _now()
    updated = (
        StoredResponse.update(status=status, body=body, updated_at=now, lease_until=lease_until)
        .where((StoredResponse.id == response_id) & StoredResponse.status.in_(FINISHABLE))
        .execute()
    )
    if updated:
        insert_rows(StoredItem, items)
        touch_conversation(conversation_id, now)
    return bool(updated)


def set_response(response: dict[str, Any], lease_until: float | None = None) -> bool:
    """Overwrite a running (or cancelled) response's status, body and lease; tell if it was."""
    return _finish(response["id"], response["status"], dumps(response), [], None, lease_until)


def touch_conversation(conversation_id: str | None, now: int) -> None:
    """A conversation that got items is not idle: retention counts from now."""
    if conversation_id:
        StoredConversation.update(updated_at=now).where(
            StoredConversation.id == conversation_id
        ).execute()


@writes
def renew_lease(response_id: str, lease_until: float) -> bool:
    """Extend a running background response's lease; False if it is no longer running."""
    renewed = (
        StoredResponse.update(lease_until=lease_until)
        .where((StoredResponse.id == response_id) & StoredResponse.status.in_(RUNNING_STATUSES))
        .execute()
    )
    return bool(renewed)


def run_state(response_id: str) -> tuple[str, float | None] | None:
    """A response's status and its runner's lease (None if it is not stored)."""
    return (
        StoredResponse.select(StoredResponse.status, StoredResponse.lease_until)
        .where(StoredResponse.id == response_id)
        .tuples()
        .first()
    )


def abandoned(now: float, limit: int = 100) -> list[str]:
    """Running background responses whose runner's lease ran out before `now`."""
    rows = (
        StoredResponse.select(StoredResponse.id)
        .where(StoredResponse.status.in_(RUNNING_STATUSES) & (StoredResponse.lease_until < now))
        .limit(limit)
        .tuples()
    )
    return [row[0] for row in rows]


Reaper = Callable[[dict[str, Any], list[dict[str, Any]]], list[dict[str, Any]]]


@writes
def fail_abandoned(response_id: str, now: float, reap: Reaper) -> bool:
    """Fail a response whose lease ran out, once: `reap(body, stored_events)` fails the body
    and gives the events that end its stream. False if its runner renewed it or it ended."""
    row = (
        StoredResponse.select(
            StoredResponse.body,
            StoredResponse.tenant_id,
            StoredResponse.owner_id,
            StoredResponse.project_id,
        )
        .where(
            (StoredResponse.id == response_id)
            & StoredResponse.status.in_(RUNNING_STATUSES)
            & (StoredResponse.lease_until < now)
        )
        .tuples()
        .first()
    )
    if row is None:
        return False
    owner = Owner(row[1], row[2], row[3])
    events = [
        json.loads(body)
        for (body,) in StoredEvent.select(StoredEvent.body)
        .where(StoredEvent.response_id == response_id)
        .order_by(StoredEvent.sequence_number)
        .tuples()
    ]
    body = json.loads(row[0])
    ending = reap(body, events)
    StoredResponse.update(
        status=body["status"], body=dumps(body), updated_at=int(now), lease_until=None
    ).where(StoredResponse.id == response_id).execute()
    insert_rows(StoredItem, item_rows(owner, response_id, OUTPUT, body["output"], int(now)))
    append_events(owner, response_id, ending)
    return True


def _response_row(
    owner: Owner,
    response: dict[str, Any],
    conversation_id: str | None,
    lease_until: float | None = None,
) -> dict[str, Any]:
    return {
        "id": response["id"],
        "created_at": response["created_at"],
        "status": response["status"],
        "model": response["model"],
        "previous_response_id": response.get("previous_response_id"),
        "conversation_id": conversation_id,
        "body": dumps(response),
        "updated_at": _now(),
        "lease_until": lease_until,
        "tenant_id": owner.tenant_id,
        "owner_id": owner.owner_id,
        "project_id": owner.project_id,
    }


def _outcome_rows(
    owner: Owner,
    response: dict[str, Any],
    input_items: list[dict[str, Any]],
    conversation_id: str | None,
) -> list[dict[str, Any]]:
    """The output items, and the conversation's new items, as rows."""
    now = _now()
    output = response.get("output") or []
    rows = item_rows(owner, response["id"], OUTPUT, output, now)
    if conversation_id:
        rows += item_rows(owner, conversation_id, CONVERSATION, input_items + output, now)
    return rows


def _now() -> int:
    return int(time.time())


@writes
def append_events(owner: Owner, response_id: str, events: list[dict[str, Any]]) -> None:
    """Keep a background response's stream events, so it can be resumed."""
    rows = [
        {
            "response_id": response_id,
            "sequence_number": event["sequence_number"],
            "body": dumps(event),
            "tenant_id": owner.tenant_id,
            "owner_id": owner.owner_id,
            "project_id": owner.project_id,
        }
        for event in events
    ]
    insert_rows(StoredEvent, rows)


def events_after(
    owner: Owner, response_id: str, after: int, limit: int = 500
) -> list[dict[str, Any]]:
    """Return stored events with a sequence number above `after`, in order."""
    rows = (
        StoredEvent.select(StoredEvent.body)
        .where(scope.events(owner, response_id, after))
        .order_by(StoredEvent.sequence_number)
        .limit(limit)
        .tuples()
    )
    return [json.loads(body) for (body,) in rows]


def get_response(owner: Owner, response_id: str) -> dict[str, Any] | None:
    """Return the stored response object, or None."""
    row = (
        StoredResponse.select(StoredResponse.body)
        .where(scope.response(owner, response_id))
        .tuples()
        .first()
    )
    return json.loads(row[0]) if row else None


def response_exists(owner: Owner, response_id: str) -> bool:
    return StoredResponse.select().where(scope.response(owner, response_id)).exists()


@writes
def delete_response(owner: Owner, response_id: str) -> bool:
    """Delete a response and its items; tell whether it existed."""
    if not StoredResponse.delete().where(scope.response(owner, response_id)).execute():
        return False
    StoredEvent.delete().where(StoredEvent.response_id == response_id).execute()
    StoredItem.delete().where(
        (StoredItem.parent_id == response_id) & StoredItem.slot.in_(RESPONSE_SLOTS)
    ).execute()
    return True


def chain_items(owner: Owner, response_id: str) -> list[dict[str, Any]] | None:
    """Return the inputs and outputs of the chain ending at `response_id`, oldest first.

    None when `owner` has no such response (expired counts as gone): the one
    query answers both, as each response of the chain gives at least a row.
    """
    anchor, ancestor, values = scope.chain_conditions(owner, db.param)
    sql = CHAIN_SQL.format(p=db.param, anchor=anchor, ancestor=ancestor)
    rows = db.execute_sql(sql, (response_id, *values)).fetchall()
    if not rows:
        return None
    return [json.loads(body) for (body,) in rows if body is not None]


def items_by_id(owner: Owner, item_ids: list[str]) -> dict[str, dict[str, Any]]:
    """Return the newest stored item of `owner`'s for each of `item_ids` that is known."""
    if not item_ids:
        return {}
    rows = (
        StoredItem.select(StoredItem.item_id, StoredItem.body)
        .where(scope.items_by_id(owner, item_ids))
        .order_by(StoredItem.seq)
        .tuples()
    )
    return {item_id: json.loads(body) for item_id, body in rows}


def page_items(
    owner: Owner,
    parent_id: str,
    slot: str,
    *,
    limit: int,
    order: str,
    after: str | None = None,
    before: str | None = None,
) -> tuple[list[dict[str, Any]], bool]:
    """Return one page of a parent's items (by item id cursors) and whether more follow."""
    query = StoredItem.select(StoredItem.seq, StoredItem.body).where(
        scope.items(owner, parent_id, slot)
    )
    ascending = order == "asc"
    for cursor_id, forward in ((after, True), (before, False)):
        if cursor_id is None:
            continue
        seq = _seq_of(owner, parent_id, slot, cursor_id)
        later = forward == ascending
        query = query.where(StoredItem.seq > seq if later else StoredItem.seq < seq)
    ordering = StoredItem.seq.asc() if ascending else StoredItem.seq.desc()
    rows = list(query.order_by(ordering).limit(limit + 1).tuples())
    return [json.loads(body) for _, body in rows[:limit]], len(rows) > limit


def _seq_of(owner: Owner, parent_id: str, slot: str, item_id: str) -> int:
    row = (
        StoredItem.select(StoredItem.seq)
        .where(scope.items(owner, parent_id, slot, item_id))
        .tuples()
        .first()
    )
    if row is None:
        raise LookupError(item_id)
    return row[0]


def shared_secret(name: str) -> bytes:
    """Return the secret `name` shared by all workers, creating it on first use."""
    row = GatewaySecret.get_or_none(GatewaySecret.name == name)
    if row is None:
        # Another worker may create it first; then theirs is the one we read.
        with contextlib.suppress(IntegrityError), db.atomic():
            GatewaySecret.insert(
                name=name, value=secrets.token_hex(32), created_at=int(time.time())
            ).execute()
        row = GatewaySecret.get(GatewaySecret.name == name)
    return bytes.fromhex(row.value)
