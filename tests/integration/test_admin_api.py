"""The admin API (/v1/gateway/…): tenants and keys, lists, versions, the audit log, refusals.

Every call goes through Flask's test client with an admin token; every
refusal is an OpenAI-shaped error with the right status, and changes
nothing (the audit log, which records each change in the change's own
transaction, shows it). Runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import time

import pytest

from tests.integration.tenancy import ADMIN_TOKEN, KEYS_MODE, AdminClient


@pytest.fixture
def admin(make_app, fresh_store):
    return AdminClient(make_app(**KEYS_MODE, **fresh_store))


def audit_actions(admin: AdminClient) -> list[str]:
    return [entry["action"] for entry in admin.ok("GET", "/audit?limit=500")["data"]]


@pytest.mark.parametrize(
    ("token", "code"),
    [(None, "missing_admin_token"), ("wrong-token-0123456789", "invalid_admin_token")],
)
def test_the_admin_api_needs_the_admin_token(make_app, token, code):
    app = make_app(**KEYS_MODE)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    for method, path in (("GET", "/keys"), ("POST", "/keys"), ("GET", "/tenants")):
        response = app.test_client().open(f"/v1/gateway{path}", method=method, headers=headers)
        assert response.status_code == 401
        assert response.get_json()["error"]["code"] == code
    assert AdminClient(app).ok("GET", "/keys")["data"] == []


def test_without_an_admin_token_configured_nobody_is_an_admin(make_app):
    app = make_app(auth="keys")
    assert AdminClient(app, token=ADMIN_TOKEN).refused("GET", "/keys", None, 401)


def test_keys_can_be_made_in_passthrough_mode_before_switching(make_app):
    admin = AdminClient(make_app(admin_token=ADMIN_TOKEN))
    assert admin.key("ready")["status"] == "active"


def test_tenants_crud(admin):
    made = admin.tenant("team-a", metadata={"cost_center": "42"})
    assert made["id"] == "team-a" and made["object"] == "gateway.tenant"
    assert made["status"] == "active" and made["version"] == 1
    generated = admin.ok("POST", "/tenants", {"name": "Generated"}, 201)
    assert generated["id"].startswith("tenant_")
    assert admin.ok("GET", "/tenants/team-a") == made
    changed = admin.ok("PATCH", "/tenants/team-a", {"name": "Team A"})
    assert changed["name"] == "Team A" and changed["version"] == 2
    ids = [tenant["id"] for tenant in admin.ok("GET", "/tenants?order=asc")["data"]]
    assert ids == sorted(["default", "team-a", generated["id"]])
    assert admin.refused("POST", "/tenants", {"id": "team-a", "name": "x"}, 409)["code"] == (
        "tenant_exists"
    )
    admin.key("holds it", tenant_id="team-a")
    assert admin.refused("DELETE", "/tenants/team-a", None, 409)["code"] == "tenant_in_use"
    assert admin.refused("DELETE", "/tenants/default", None, 409)["code"] == "tenant_in_use"
    assert admin.ok("DELETE", f"/tenants/{generated['id']}")["deleted"] is True
    assert admin.refused("GET", f"/tenants/{generated['id']}", None, 404)


def test_keys_live_in_a_tenant_that_exists(admin):
    error = admin.refused("POST", "/keys", {"name": "k", "tenant_id": "nowhere"}, 404)
    assert error["param"] == "tenant_id"
    assert admin.key("in default")["tenant_id"] == "default"


def test_key_names_are_unique_per_tenant(admin):
    admin.tenant("team-b")
    admin.key("ci")
    assert admin.refused("POST", "/keys", {"name": "ci"}, 409)["code"] == "key_name_taken"
    assert admin.key("ci", tenant_id="team-b")["tenant_id"] == "team-b"
    other = admin.key("other")
    error = admin.refused("PATCH", f"/keys/{other['id']}", {"name": "ci"}, 409)
    assert error["code"] == "key_name_taken" and error["param"] == "name"


def test_keys_are_listed_filtered_and_paged_in_sql(admin):
    admin.tenant("team-c")
    made = [admin.key(f"svc-{n}", project_id="p1" if n % 2 else None) for n in range(5)]
    admin.key("batch-job", tenant_id="team-c")
    admin.ok("PATCH", f"/keys/{made[0]['id']}", {"status": "disabled"})

    everything = admin.ok("GET", "/keys?limit=500")["data"]
    assert len(everything) == 6
    assert [key["id"] for key in everything] == sorted((k["id"] for k in everything), reverse=True)
    first = admin.ok("GET", "/keys?limit=2&order=asc&name_prefix=svc-")
    assert [key["name"] for key in first["data"]] == ["svc-0", "svc-1"] and first["has_more"]
    assert first["first_id"] == made[0]["id"] and first["last_id"] == made[1]["id"]
    rest = admin.ok("GET", f"/keys?limit=10&order=asc&name_prefix=svc-&after={first['last_id']}")
    assert [key["name"] for key in rest["data"]] == ["svc-2", "svc-3", "svc-4"]
    assert not rest["has_more"]
    back = admin.ok("GET", f"/keys?order=asc&name_prefix=svc-&before={made[2]['id']}")
    assert [key["name"] for key in back["data"]] == ["svc-0", "svc-1"]
    assert {k["name"] for k in admin.ok("GET", "/keys?project_id=p1")["data"]} == {"svc-1", "svc-3"}
    assert [k["name"] for k in admin.ok("GET", "/keys?tenant_id=team-c")["data"]] == ["batch-job"]
    assert [k["name"] for k in admin.ok("GET", "/keys?status=disabled")["data"]] == ["svc-0"]
    assert len(admin.ok("GET", "/keys?status=active")["data"]) == 5
    # The prefix is a prefix, not a LIKE pattern.
    assert admin.ok("GET", "/keys?name_prefix=svc_")["data"] == []
    assert admin.ok("GET", "/keys?name_prefix=%25")["data"] == []


@pytest.mark.parametrize("query", ["limit=0", "limit=501", "limit=x", "order=up", "status=gone"])
def test_bad_list_parameters_are_a_400(admin, query):
    assert admin.refused("GET", f"/keys?{query}", None, 400)["param"] in (
        "limit",
        "order",
        "status",
    )


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({}, "name", "missing_required_parameter"),
        ({"name": "k", "colour": "red"}, "colour", "unknown_parameter"),
        ({"name": 7}, "name", "invalid_type"),
        ({"name": " padded"}, "name", "invalid_value"),
        ({"name": "x" * 257}, "name", "invalid_value"),
        ({"name": "k", "allowed_models": "gpt-*"}, "allowed_models", "invalid_type"),
        ({"name": "k", "allowed_models": [""]}, "allowed_models[0]", "invalid_value"),
        ({"name": "k", "expires_at": "tomorrow"}, "expires_at", "invalid_type"),
        ({"name": "k", "expires_at": 1}, "expires_at", "invalid_value"),
        ({"name": "k", "tenant_id": "Not A Tenant"}, "tenant_id", "invalid_value"),
        ({"name": "k", "metadata": {"a": 1}}, "metadata.a", "invalid_type"),
        ({"name": "k", "rpm_limit": "10"}, "rpm_limit", "invalid_type"),
    ],
)
def test_a_bad_key_body_is_a_400_that_makes_nothing(admin, body, param, code):
    error = admin.refused("POST", "/keys", body, 400)
    assert (error["param"], error["code"]) == (param, code), error
    assert admin.ok("GET", "/keys")["data"] == [] and audit_actions(admin) == []


def test_a_body_that_is_not_an_object_is_a_400(admin):
    response = admin.client.post(
        "/v1/gateway/keys",
        data=b"[1, 2]",
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert admin.refused("POST", "/keys", None, 400)["code"] == "invalid_json"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"grace_seconds": -1}, "grace_seconds"),
        ({"grace_seconds": 604801}, "grace_seconds"),
        ({"grace_seconds": "60"}, "grace_seconds"),
        ({"grace": 60}, "grace"),
    ],
)
def test_a_bad_rotation_is_a_400_that_rotates_nothing(admin, body, param):
    made = admin.key("steady")
    assert admin.refused("POST", f"/keys/{made['id']}/rotate", body, 400)["param"] == param
    assert admin.ok("GET", f"/keys/{made['id']}")["last4"] == made["last4"]


def test_versions_guard_against_lost_updates(admin):
    made = admin.key("versioned")
    path = f"/keys/{made['id']}"
    fetched = admin.call("GET", path)
    assert fetched.headers["ETag"] == 'W/"1"'
    changed = admin.call("PATCH", path, {"metadata": {"a": "b"}}, **{"If-Match": 'W/"1"'})
    assert changed.status_code == 200 and changed.headers["ETag"] == 'W/"2"'
    stale = admin.refused("PATCH", path, {"metadata": {}}, 412, **{"If-Match": 'W/"1"'})
    assert stale["code"] == "precondition_failed"
    assert admin.ok("GET", path)["metadata"] == {"a": "b"}
    assert admin.refused("PATCH", path, {}, 400, **{"If-Match": "soon"})["code"] == (
        "invalid_header"
    )
    assert admin.ok("PATCH", path, {"user_id": "u1"}, **{"If-Match": "*"})["version"] == 3


def test_every_change_is_in_the_audit_log_without_secrets(admin):
    admin.tenant("team-d")
    made = admin.key("audited", tenant_id="team-d")
    patched = admin.call("PATCH", f"/keys/{made['id']}", {"allowed_models": ["gpt-*"]})
    admin.ok("POST", f"/keys/{made['id']}/rotate", {"grace_seconds": 5})
    admin.ok("DELETE", f"/keys/{made['id']}")
    entries = admin.ok("GET", "/audit")["data"]
    assert [entry["action"] for entry in entries] == [
        "key.delete",
        "key.rotate",
        "key.update",
        "key.create",
        "tenant.create",
    ]
    update = entries[2]
    assert update["actor"] == "admin-token:env" and update["tenant_id"] == "team-d"
    assert update["resource_type"] == "key" and update["resource_id"] == made["id"]
    assert update["diff"] == {"allowed_models": [None, ["gpt-*"]]}
    assert update["request_id"] == patched.headers["x-request-id"]
    assert set(entries[1]["diff"]) >= {"last4", "rotation_id"}
    text = str(entries)
    assert made["secret"] not in text and made["secret"].split("_", 1)[1] not in text
    assert "secret_hash" not in text and "lookup_id" not in text
    now = int(time.time())
    assert admin.ok("GET", f"/audit?start={now + 10}")["data"] == []
    assert len(admin.ok("GET", "/audit?actor=admin-token:env&limit=2")["data"]) == 2
    assert admin.ok("GET", "/audit?actor=someone-else")["data"] == []
