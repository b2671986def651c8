"""The one way a read finds stored objects: those its owner owns, that retention keeps.

Every query for an object a caller named (a response, its items, a
conversation, an item reference, a stream's events, a file) builds its where-clause
here, from the caller's `Owner` and the id: so another tenant's or
another key's object is simply not there (a 404, never a 403), and an
expired one neither. Only the gateway's own jobs (runners, reapers,
sweeps) read by bare id, outside this module.
"""

from __future__ import annotations

from typing import Any

from app.auth.principal import ANONYMOUS, Owner
from app.store.models import (
    CONVERSATION,
    RESPONSE_SLOTS,
    Prompt,
    StoredConversation,
    StoredEvent,
    StoredFile,
    StoredItem,
    StoredResponse,
    VectorStore,
)
from app.store.retention import oldest_kept


def owned(model: Any, owner: Owner) -> Any:
    """The rows of `model` that `owner` may read: its own, and what it shares in."""
    if owner.reads_anonymous and owner.owner_id != ANONYMOUS:
        whose = model.owner_id.in_((owner.owner_id, ANONYMOUS))
    else:
        whose = model.owner_id == owner.owner_id
    if owner.reads_project and owner.project_id is not None:
        whose |= model.project_id == owner.project_id
    return (model.tenant_id == owner.tenant_id) & whose


def owned_sql(owner: Owner, alias: str, param: str) -> tuple[str, tuple[str, ...]]:
    """`owned` as SQL on the table named `alias`, and its parameters (for hand-written queries)."""
    sql = f"{alias}.tenant_id = {param} AND ({alias}.owner_id = {param}"
    values: tuple[str, ...] = (owner.tenant_id, owner.owner_id)
    if owner.reads_anonymous and owner.owner_id != ANONYMOUS:
        sql += f" OR {alias}.owner_id = {param}"
        values += (ANONYMOUS,)
    if owner.reads_project and owner.project_id is not None:
        sql += f" OR {alias}.project_id = {param}"
        values += (owner.project_id,)
    return sql + ")", values


def response(owner: Owner, response_id: str) -> Any:
    """A stored response of `owner`'s that has not expired."""
    clause = owned(StoredResponse, owner) & (StoredResponse.id == response_id)
    oldest = oldest_kept()
    return clause if oldest is None else clause & (StoredResponse.created_at >= oldest)


def conversation(owner: Owner, conversation_id: str) -> Any:
    """A conversation of `owner`'s that has not been idle past the TTL."""
    clause = owned(StoredConversation, owner) & (StoredConversation.id == conversation_id)
    oldest = oldest_kept()
    return clause if oldest is None else clause & (StoredConversation.updated_at >= oldest)


def items(owner: Owner, parent_id: str, slot: str, item_id: str | None = None) -> Any:
    """One parent's items in `slot` (or the one of them with `item_id`), as `owner`'s."""
    clause = owned(StoredItem, owner) & (StoredItem.parent_id == parent_id)
    clause &= StoredItem.slot == slot
    return clause if item_id is None else clause & (StoredItem.item_id == item_id)


def items_by_id(owner: Owner, item_ids: list[str]) -> Any:
    """`owner`'s items with these ids, of parents that have not expired."""
    clause = owned(StoredItem, owner) & StoredItem.item_id.in_(item_ids)
    oldest = oldest_kept()
    if oldest is None:
        return clause
    live = StoredConversation.select(StoredConversation.id).where(
        owned(StoredConversation, owner) & (StoredConversation.updated_at >= oldest)
    )
    of_responses = StoredItem.slot.in_(RESPONSE_SLOTS) & (StoredItem.created_at >= oldest)
    in_conversations = (StoredItem.slot == CONVERSATION) & StoredItem.parent_id.in_(live)
    return clause & (of_responses | in_conversations)


def events(owner: Owner, response_id: str, after: int) -> Any:
    """The stream events of `owner`'s response after sequence number `after`."""
    clause = owned(StoredEvent, owner) & (StoredEvent.response_id == response_id)
    return clause & (StoredEvent.sequence_number > after)


def files(owner: Owner, now: int) -> Any:
    """`owner`'s uploaded files that have not expired by `now`."""
    live = StoredFile.expires_at.is_null() | (StoredFile.expires_at > now)
    return owned(StoredFile, owner) & live


def file(owner: Owner, file_id: str, now: int) -> Any:
    """One of `owner`'s uploaded files, unless it has expired by `now`."""
    return files(owner, now) & (StoredFile.id == file_id)


def vector_store(owner: Owner, vector_store_id: str) -> Any:
    """One of `owner`'s vector stores (an expired one too: it says so in its status)."""
    return owned(VectorStore, owner) & (VectorStore.id == vector_store_id)


def prompt(owner: Owner, prompt_id: str) -> Any:
    """One of `owner`'s prompts."""
    return owned(Prompt, owner) & (Prompt.id == prompt_id)


def chain_conditions(owner: Owner, param: str) -> tuple[str, str, tuple[Any, ...]]:
    """SQL for the chain query: the anchor's and each ancestor's owner (and age) checks,
    and the parameters of both, in order."""
    anchor, anchor_values = owned_sql(owner, "responses", param)
    ancestor, ancestor_values = owned_sql(owner, "r", param)
    oldest = oldest_kept()
    if oldest is not None:
        anchor += f" AND responses.created_at >= {param}"
        ancestor += f" AND r.created_at >= {param}"
        anchor_values += (oldest,)
        ancestor_values += (oldest,)
    return f" AND {anchor}", f" WHERE {ancestor}", anchor_values + ancestor_values
