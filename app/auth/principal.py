"""Who a request acts as: its principal, and the owner of what it stores.

Every service takes the caller as a `Principal`; every stored object
belongs to an `Owner` (a tenant and, within it, an owner id, and the
project it was stored under), and every store read is scoped to one. In
passthrough mode a caller is known by an HMAC of the key it sent (or is
anonymous, without one), in the default tenant, and that key is passed
through to the backend (`backend_key`); in keys mode, by its virtual key.

Pure: no Flask, no database. An ext_proc process builds principals too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fnmatch import fnmatchcase

DEFAULT_TENANT = "default"
ANONYMOUS = ""  # the owner id of what an anonymous (passthrough) caller stores


@dataclass(frozen=True)
class Owner:
    """Whose stored objects a read may see, and whom a write gives them to."""

    tenant_id: str = DEFAULT_TENANT
    owner_id: str = ANONYMOUS
    project_id: str | None = None  # written on what it stores
    # Reads also see the objects of the same project (keys mode, project sharing) ...
    reads_project: bool = False
    # ... and the anonymous caller's: in passthrough, what any caller without a
    # key could read anyway (and what was stored before owners existed).
    reads_anonymous: bool = False


@dataclass(frozen=True)
class BudgetRef:
    """A budget a request counts in: its id, and the calendar its period follows."""

    id: str
    period: str  # none, daily, weekly, monthly
    timezone: str = "UTC"


@dataclass(frozen=True)
class Limits:
    """What a key may take: requests and tokens a minute, requests at once, budgets."""

    rpm: int | None = None
    tpm: int | None = None
    max_parallel: int | None = None
    budgets: tuple[BudgetRef, ...] = ()

    def any(self) -> bool:
        return bool(self.budgets) or any(
            value is not None for value in (self.rpm, self.tpm, self.max_parallel)
        )


NO_LIMITS = Limits()


@dataclass(frozen=True)
class Principal:
    """The caller: its tenant, key, project, user, what it may use, and the key to forward."""

    tenant_id: str = DEFAULT_TENANT
    key_id: str | None = None
    key_name: str | None = None
    project_id: str | None = None
    user_id: str | None = None
    roles: frozenset[str] = frozenset()
    # Model names (globs) the caller may use; None: every model.
    allowed_models: tuple[str, ...] | None = None
    # The key sent to a backend that has none of its own (the client's, in passthrough).
    backend_key: str | None = field(default=None, repr=False)
    owner: Owner = Owner()
    limits: Limits = NO_LIMITS

    def may_use(self, model: str) -> bool:
        """Tell whether this caller may use `model`."""
        if self.allowed_models is None:
            return True
        return any(fnmatchcase(model, pattern) for pattern in self.allowed_models)


ANONYMOUS_PRINCIPAL = Principal()
