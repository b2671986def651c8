"""Who a request acts as: its principal, and the owner of what it stores.

Every service takes the caller as a `Principal`; every stored object
belongs to an `Owner` (a tenant and, within it, an owner id), and every
store read is scoped to one. Until gateway keys exist there is one
caller, anonymous, in the default tenant: the gateway passes the client's
own key through to the backend (`backend_key`).

Pure: no Flask, no database. An ext_proc process builds principals too.
"""

from __future__ import annotations

from dataclasses import dataclass, field

DEFAULT_TENANT = "default"
ANONYMOUS = ""  # the owner id of what an anonymous (passthrough) caller stores


@dataclass(frozen=True)
class Owner:
    """Whose stored objects a read may see, and whom a write gives them to."""

    tenant_id: str = DEFAULT_TENANT
    owner_id: str = ANONYMOUS


@dataclass(frozen=True)
class Principal:
    """The caller: its tenant, key, project, user and roles, and the key to forward."""

    tenant_id: str = DEFAULT_TENANT
    key_id: str | None = None
    project_id: str | None = None
    user_id: str | None = None
    roles: frozenset[str] = frozenset()
    # The key sent to a backend that has none of its own (the client's, in passthrough).
    backend_key: str | None = field(default=None, repr=False)

    @property
    def owner(self) -> Owner:
        """The owner of what this principal stores (and may read back)."""
        return Owner(self.tenant_id, self.key_id or ANONYMOUS)


ANONYMOUS_PRINCIPAL = Principal()
