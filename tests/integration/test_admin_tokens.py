"""Admin tokens from the API: roles (viewer, admin) and scopes (a tenant, key-name prefixes).

A token is shown once and stored as an HMAC; a viewer reads and is refused
every change (403); a tenant's admin sees its tenant only, and another
tenant's objects are a 404, never a 403; a prefix-limited admin sees, makes
and bills only keys of its prefixes, in the key list and in the ledger; an
admin hands out no more than it holds; a deleted or expired token is a 401
on its next request.
"""

from __future__ import annotations

import time

import pytest

from app.store import db
from app.store.models import AdminToken
from tests.integration.helpers import create
from tests.integration.tenancy import KEYS_MODE, AdminClient, key_sdk


@pytest.fixture
def plane(make_app):
    app = make_app(**KEYS_MODE)
    root = AdminClient(app)
    root.tenant("acme")
    root.tenant("globex")
    return app, root


def token_client(app, root: AdminClient, **body) -> AdminClient:
    made = root.ok("POST", "/admin-tokens", {"name": "t", **body}, 201)
    assert made["token"].startswith(made["token_prefix"] + "_") and "secret_hash" not in made
    return AdminClient(app, made["token"])


def test_the_token_is_shown_once_and_only_its_hash_is_kept(plane):
    app, root = plane
    made = root.ok("POST", "/admin-tokens", {"name": "ops", "role": "admin"}, 201)
    listed = root.ok("GET", "/admin-tokens")["data"]
    assert [row["id"] for row in listed] == [made["id"]] and "token" not in listed[0]
    with db.connection_context():
        stored = AdminToken.get_by_id(made["id"])
    assert made["token"].split("_", 1)[1] not in (stored.secret_hash, stored.lookup_id)
    assert AdminClient(app, made["token"]).ok("GET", "/tenants")["data"]


def test_a_viewer_reads_and_is_refused_every_change(plane):
    app, root = plane
    root.key("ci")
    viewer = token_client(app, root, role="viewer")
    assert len(viewer.ok("GET", "/keys")["data"]) == 1
    for method, path, body in (
        ("POST", "/keys", {"name": "new"}),
        ("POST", "/admin-tokens", {"name": "x", "role": "viewer"}),
        (
            "PUT",
            "/prices",
            {
                "prices": [
                    {"model": "m", "input_micros_per_million": 1, "output_micros_per_million": 1}
                ]
            },
        ),
        ("POST", "/budgets", {"name": "b", "max_budget_usd": 1}),
    ):
        error = viewer.refused(method, path, body, 403)
        assert error["code"] == "permission_denied"
    assert len(root.ok("GET", "/keys")["data"]) == 1


def test_a_tenant_admin_sees_its_tenant_only_and_others_are_404(plane):
    app, root = plane
    theirs = root.key("theirs", tenant_id="globex")
    acme = token_client(app, root, role="admin", tenant_id="acme")
    mine = acme.key("mine")
    assert mine["tenant_id"] == "acme"
    assert [key["name"] for key in acme.ok("GET", "/keys")["data"]] == ["mine"]
    assert [tenant["id"] for tenant in acme.ok("GET", "/tenants")["data"]] == ["acme"]
    for method, path in (
        ("GET", f"/keys/{theirs['id']}"),
        ("PATCH", f"/keys/{theirs['id']}"),
        ("DELETE", f"/keys/{theirs['id']}"),
        ("GET", "/tenants/globex"),
    ):
        assert acme.refused(method, path, {} if method == "PATCH" else None, 404)
    assert acme.refused("POST", "/keys", {"name": "x", "tenant_id": "globex"}, 404)
    assert acme.refused("POST", "/tenants", {"id": "new", "name": "new"}, 403)
    assert acme.refused(
        "POST", "/admin-tokens", {"name": "s", "role": "admin", "tenant_id": None}, 403
    )


def test_a_prefix_limited_admin_sees_and_bills_only_its_keys(plane):
    app, root = plane
    other = root.key("billing-bot")
    limited = token_client(
        app, root, role="admin", tenant_id="default", allowed_key_prefixes=["search-"]
    )
    own = limited.key("search-api")
    error = limited.refused("POST", "/keys", {"name": "payments"}, 403)
    assert error["param"] == "name"
    assert [key["name"] for key in limited.ok("GET", "/keys")["data"]] == ["search-api"]
    assert limited.refused("GET", f"/keys/{other['id']}", None, 404)
    create(key_sdk(app, own), input="mine")
    create(key_sdk(app, other), input="theirs")
    rows = limited.ok("GET", "/ledger")["data"]
    assert [row["key_name"] for row in rows] == ["search-api"]
    assert len(root.ok("GET", "/ledger")["data"]) == 2
    summary = limited.ok("GET", "/usage/summary?group_by=key")["data"]
    assert [row["key_name"] for row in summary] == ["search-api"]
    csv_text = limited.call("GET", "/ledger.csv").get_data(as_text=True)
    assert "search-api" in csv_text and "billing-bot" not in csv_text
    assert limited.refused(
        "POST",
        "/admin-tokens",
        {"name": "wider", "role": "admin", "allowed_key_prefixes": ["b"]},
        403,
    )


def test_a_deleted_or_expired_token_is_refused_on_its_next_request(plane):
    app, root = plane
    made = root.ok("POST", "/admin-tokens", {"name": "t", "role": "admin"}, 201)
    holder = AdminClient(app, made["token"])
    assert holder.ok("GET", "/keys")["object"] == "list"
    root.ok("DELETE", f"/admin-tokens/{made['id']}")
    assert holder.refused("GET", "/keys", None, 401)["code"] == "invalid_admin_token"
    soon = root.ok(
        "POST",
        "/admin-tokens",
        {"name": "s", "role": "viewer", "expires_at": int(time.time()) + 1},
        201,
    )
    time.sleep(1.2)
    expired = AdminClient(app, soon["token"]).refused("GET", "/keys", None, 401)
    assert expired["code"] == "admin_token_expired"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"name": "t"}, "role"),
        ({"name": "t", "role": "owner"}, "role"),
        ({"name": "t", "role": "admin", "allowed_key_prefixes": "a"}, "allowed_key_prefixes"),
        ({"name": "t", "role": "admin", "expires_at": 1}, "expires_at"),
        ({"name": "t", "role": "admin", "colour": "red"}, "colour"),
    ],
)
def test_malformed_admin_token_bodies_are_a_400_that_makes_nothing(plane, body, param):
    _, root = plane
    assert root.refused("POST", "/admin-tokens", body, 400)["param"] == param
    assert root.ok("GET", "/admin-tokens")["data"] == []


def test_a_malformed_or_unknown_token_is_a_401(plane):
    app, _ = plane
    for token in ("gwa-abcdefgh_" + "x" * 43, "not-a-token", "gw-abcdefgh_" + "y" * 43):
        assert AdminClient(app, token).refused("GET", "/keys", None, 401)["code"] == (
            "invalid_admin_token"
        )


def samples(admin: AdminClient) -> dict[tuple, float]:
    from prometheus_client.parser import text_string_to_metric_families

    response = admin.call("GET", "/metrics")
    assert response.status_code == 200 and response.mimetype == "text/plain"
    found = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def requests_by(found: dict, **labels: str) -> float:
    return sum(
        value
        for (name, items), value in found.items()
        if name == "gateway_usage_requests_total" and set(labels.items()) <= set(items)
    )


def test_usage_metrics_come_from_the_ledger_with_bounded_labels_and_scope(make_app, backend):
    app = make_app(**KEYS_MODE, metrics_tenant_label=True)
    root = AdminClient(app)
    root.tenant("acme")
    create(key_sdk(app, root.key("d")), input="one")
    create(key_sdk(app, root.key("a", tenant_id="acme")), input="two")
    # `model` is one the gateway knows (configured, priced, or served, up to a bound).
    known = app.extensions["model_labels"].known
    assert {dict(items)["model"] for _, items in samples(root) if "model" in dict(items)} <= known
    root.ok(
        "PUT",
        "/prices",
        {
            "prices": [
                {
                    "model": "fake-model",
                    "input_micros_per_million": 1,
                    "output_micros_per_million": 1,
                }
            ]
        },
    )
    root.ok("PATCH", "/tenants/acme", {"max_budget_usd": 5})
    found = samples(root)
    assert requests_by(found, tenant="acme", model="fake-model") == 1
    assert requests_by(found, tenant="default", model="fake-model") == 1
    limit = (
        "gateway_budget_usd",
        (("budget", "tenant:acme"), ("kind", "tenant"), ("tenant", "acme"), ("value", "limit")),
    )
    assert found[limit] == 5
    assert not any("key" in dict(items) for _, items in found)
    acme = token_client(app, root, role="viewer", tenant_id="acme")
    theirs = samples(acme)
    assert requests_by(theirs, tenant="acme") == 1 and requests_by(theirs, tenant="default") == 0


def test_the_tenant_label_is_opt_in(plane, backend):
    app, root = plane
    create(key_sdk(app, root.key("d")), input="one")
    create(key_sdk(app, root.key("a", tenant_id="acme")), input="two")
    found = samples(root)
    usage = {
        items: value
        for (name, items), value in found.items()
        if name == "gateway_usage_requests_total"
    }
    assert usage and not any("tenant" in dict(items) for items in usage)
    assert sum(usage.values()) == 2


def test_a_prefix_limited_admin_cannot_change_shared_budgets_or_prices(plane):
    app, root = plane
    group = root.ok("POST", "/budgets", {"name": "shared", "max_budget_usd": 5}, 201)
    limited = token_client(
        app, root, role="admin", tenant_id="default", allowed_key_prefixes=["search-"]
    )
    assert limited.refused("PATCH", f"/budgets/{group['id']}", {"max_budget_usd": 0}, 403)
    assert limited.refused("POST", "/budgets", {"name": "b", "max_budget_usd": 1}, 403)
    price = {"model": "m", "input_micros_per_million": 1, "output_micros_per_million": 1}
    assert limited.refused("PUT", "/prices", {"prices": [price]}, 403)
    assert root.ok("GET", f"/budgets/{group['id']}")["max_budget_usd"] == 5
