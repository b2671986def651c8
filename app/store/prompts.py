"""Queries about prompts and their versions: the caller's own."""

from __future__ import annotations

import json
from typing import Any

from app.auth.principal import Owner
from app.compact_json import dumps
from app.errors import Conflict
from app.store import scope
from app.store.models import Prompt, PromptVersion
from app.store.pages import id_page
from app.store.writes import writes


@writes
def create_prompt(owner: Owner, prompt: dict[str, Any], template: str) -> None:
    """Record a new prompt (`prompt`: its stored fields) with its version 1."""
    Prompt.insert(
        **{**prompt, "metadata": dumps(prompt["metadata"])},
        tenant_id=owner.tenant_id,
        owner_id=owner.owner_id,
        project_id=owner.project_id,
    ).execute()
    PromptVersion.insert(
        prompt_id=prompt["id"], version=1, template=template, created_at=prompt["created_at"]
    ).execute()


def get_prompt(owner: Owner, prompt_id: str) -> dict[str, Any] | None:
    row = Prompt.select().where(scope.prompt(owner, prompt_id)).dicts().first()
    return _fields(row) if row else None


def list_prompts(
    owner: Owner, *, limit: int, order: str, after: str | None, before: str | None
) -> tuple[list[dict[str, Any]], bool]:
    query = Prompt.select().where(scope.owned(Prompt, owner))
    rows, more = id_page(query, Prompt.id, limit, order, after, before)
    return [_fields(row) for row in rows], more


def get_version(prompt_id: str, version: int) -> dict[str, Any] | None:
    return (
        PromptVersion.select()
        .where((PromptVersion.prompt_id == prompt_id) & (PromptVersion.version == version))
        .dicts()
        .first()
    )


def list_versions(prompt_id: str) -> list[dict[str, Any]]:
    return list(
        PromptVersion.select()
        .where(PromptVersion.prompt_id == prompt_id)
        .order_by(PromptVersion.version.desc())
        .dicts()
    )


@writes
def add_version(
    owner: Owner,
    prompt_id: str,
    based_on: int,
    template: str,
    changes: dict[str, Any],
    now: int,
) -> int:
    """Make the next version from `based_on`, which must be the latest (else a conflict:
    another edit came first); it becomes the default. Return its number."""
    new = based_on + 1
    fields = {**changes, "latest_version": new, "default_version": new}
    if "metadata" in fields:
        fields["metadata"] = dumps(fields["metadata"])
    updated = (
        Prompt.update(**fields)
        .where(scope.prompt(owner, prompt_id) & (Prompt.latest_version == based_on))
        .execute()
    )
    if not updated:
        raise Conflict(
            f"Prompt {prompt_id} has moved on from version {based_on}: retrieve its latest "
            "version and make the change from it.",
            param="version",
            code="stale_version",
        )
    PromptVersion.insert(
        prompt_id=prompt_id, version=new, template=template, created_at=now
    ).execute()
    return new


@writes
def set_default(owner: Owner, prompt_id: str, version: int) -> bool:
    updated = Prompt.update(default_version=version).where(scope.prompt(owner, prompt_id))
    return bool(updated.execute())


@writes
def delete_prompt(owner: Owner, prompt_id: str) -> bool:
    if not Prompt.delete().where(scope.prompt(owner, prompt_id)).execute():
        return False
    PromptVersion.delete().where(PromptVersion.prompt_id == prompt_id).execute()
    return True


def _fields(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "metadata": json.loads(row["metadata"])}
