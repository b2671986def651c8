"""Keys mode: clients present the gateway's virtual keys, made through the admin API.

A key made by an admin works at once through the real openai client;
the backend gets its own configured key, never the client's. A missing,
unknown, malformed, disabled, expired or deleted key is a 401 before the
body is read and nothing goes upstream; a model outside the key's globs is
a 403. Rotation with a grace period keeps the old secret working until
the grace ends or is revoked. Two apps on one store (two workers) agree
at once on a key's change. The token is never stored nor logged.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path

import openai
import pytest

from app.auth.admin import STATIC_ACTOR
from app.auth.tokens import TOKEN
from app.store import db, replays
from tests import fakebackend as fb
from tests.conftest import sdk_for
from tests.integration.helpers import MODEL, assert_openai_error, create
from tests.integration.tenancy import KEYS_MODE, AdminClient, key_sdk

BACKEND_KEY = "sk-backend-own-key-0123456789"
EXPIRY_WAIT = 5.0


@pytest.fixture
def keyed(make_app, backend, tmp_path):
    """An app in keys mode whose backend has a key of its own, and its admin."""
    app = make_app(**KEYS_MODE, backends=[{"base_url": backend.base_url, "api_key": BACKEND_KEY}])
    return app, AdminClient(app)


def refused_401(call, code: str) -> dict:
    with pytest.raises(openai.AuthenticationError) as caught:
        call()
    error = assert_openai_error(caught.value, 401)
    assert error["code"] == code, error
    return error


def test_a_new_key_works_at_once_and_the_backend_gets_its_own_key(keyed, backend):
    app, admin = keyed
    made = admin.key("ci")
    assert TOKEN.fullmatch(made["secret"])
    assert made["secret"].startswith(made["token_prefix"] + "_")
    assert made["secret"].endswith(made["last4"])
    assert made["id"].startswith("vk_") and made["status"] == "active"

    answer = create(key_sdk(app, made), input="Hi")
    assert answer.response.status == "completed"
    assert backend.requests[-1].headers["authorization"] == f"Bearer {BACKEND_KEY}"
    shown = admin.ok("GET", f"/keys/{made['id']}")
    assert "secret" not in shown and shown == {k: v for k, v in made.items() if k != "secret"}


def test_the_token_is_kept_nowhere_and_logged_nowhere(keyed, backend, caplog, tmp_path: Path):
    app, admin = keyed
    caplog.set_level(logging.DEBUG)
    made = admin.key("secretive")
    secret = made["secret"]
    create(key_sdk(app, made), input="Hi")
    wrong = secret[:-4] + ("AAAA" if not secret.endswith("AAAA") else "BBBB")
    refused_401(lambda: sdk_for(app, api_key=wrong).models.list(), "invalid_api_key")
    stored = b"".join(path.read_bytes() for path in tmp_path.glob("gateway-*.db*"))
    for form in (secret, secret.split("_", 1)[1]):
        assert form.encode() not in stored
        assert form not in caplog.text
        assert wrong not in caplog.text


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "missing_api_key"),
        ({"Authorization": "Bearer sk-not-a-gateway-key-0123456789"}, "invalid_api_key"),
        ({"Authorization": "Bearer gw-abcdefgh_" + "A" * 43}, "invalid_api_key"),
        ({"x-api-key": "gw-short"}, "invalid_api_key"),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, "missing_api_key"),
    ],
)
def test_no_valid_key_is_a_401_before_the_body_is_read(keyed, backend, headers, code):
    app, _ = keyed
    client = app.test_client()
    for path, body in (
        ("/v1/responses", b"{not json"),
        ("/v1/conversations", b"{}"),
    ):
        response = client.post(path, data=body, headers={**headers, "Content-Type": "x"})
        assert response.status_code == 401, response.get_json()
        error = response.get_json()["error"]
        assert error["code"] == code and error["type"] == "invalid_request_error"
    assert client.get("/v1/models", headers=headers).status_code == 401
    assert backend.requests == []


def test_x_api_key_is_accepted_as_well(keyed, backend):
    app, admin = keyed
    made = admin.key("header")
    response = app.test_client().post(
        "/v1/responses", json={"model": MODEL, "input": "Hi"}, headers={"x-api-key": made["secret"]}
    )
    assert response.status_code == 200 and response.get_json()["status"] == "completed"


def test_a_disabled_key_is_refused_and_works_again_when_enabled(keyed, backend):
    app, admin = keyed
    made = admin.key("toggled")
    sdk = key_sdk(app, made)
    admin.ok("PATCH", f"/keys/{made['id']}", {"status": "disabled"})
    refused_401(lambda: sdk.responses.create(model=MODEL, input="Hi"), "key_disabled")
    assert backend.requests == []
    assert admin.ok("GET", f"/keys/{made['id']}")["status"] == "disabled"
    admin.ok("PATCH", f"/keys/{made['id']}", {"status": "active"})
    assert create(sdk, input="Hi").response.status == "completed"


def test_a_key_past_its_expiry_is_refused(keyed, backend):
    app, admin = keyed
    made = admin.key("brief", expires_at=int(time.time()) + 2)
    sdk = key_sdk(app, made)
    assert create(sdk, input="Hi").response.status == "completed"
    deadline = time.monotonic() + EXPIRY_WAIT
    while time.time() < made["expires_at"] and time.monotonic() < deadline:
        time.sleep(0.1)
    refused_401(lambda: sdk.models.list(), "key_expired")
    assert admin.ok("GET", f"/keys/{made['id']}")["status"] == "expired"
    listed = admin.ok("GET", "/keys?status=expired")["data"]
    assert [key["id"] for key in listed] == [made["id"]]


def test_a_deleted_key_is_refused_and_its_name_free_again(keyed, backend):
    app, admin = keyed
    made = admin.key("gone")
    deleted = admin.ok("DELETE", f"/keys/{made['id']}")
    assert deleted == {"id": made["id"], "object": "gateway.key.deleted", "deleted": True}
    refused_401(lambda: key_sdk(app, made).models.list(), "invalid_api_key")
    assert admin.refused("GET", f"/keys/{made['id']}", None, 404)["param"] == "key_id"
    assert admin.refused("DELETE", f"/keys/{made['id']}", None, 404)
    assert admin.ok("GET", "/keys")["data"] == []
    again = admin.key("gone")
    assert again["id"] != made["id"]


def test_allowed_models_are_globs_and_other_models_are_a_403(keyed, backend):
    app, admin = keyed
    made = admin.key("fake only", allowed_models=["fake-*"])
    sdk = key_sdk(app, made)
    assert create(sdk, input="Hi").response.model == MODEL
    with pytest.raises(openai.PermissionDeniedError) as caught:
        sdk.responses.create(model="other-model", input="Hi")
    error = assert_openai_error(caught.value, 403)
    assert error["code"] == "model_not_allowed" and error["param"] == "model"
    assert len(backend.chat_requests()) == 1
    assert [model.id for model in sdk.models.list()] == [MODEL]
    everything = key_sdk(app, admin.key("everything"))
    assert sorted(model.id for model in everything.models.list()) == [MODEL, "other-model"]


def test_rotation_with_grace_keeps_the_old_secret_until_revoked(keyed, backend):
    app, admin = keyed
    made = admin.key("rotated")
    old = key_sdk(app, made)
    rotation = admin.ok("POST", f"/keys/{made['id']}/rotate", {"grace_seconds": 600})
    assert rotation["object"] == "gateway.key.rotation" and rotation["rotation_id"]
    assert rotation["secret"] != made["secret"] and TOKEN.fullmatch(rotation["secret"])
    assert rotation["previous_secret_expires_at"] >= int(time.time()) + 590
    assert rotation["key"]["last4"] == rotation["secret"][-4:]
    new = sdk_for(app, api_key=rotation["secret"])
    assert create(old, input="old").response.status == "completed"
    assert create(new, input="new").response.status == "completed"

    revoked = admin.ok("POST", f"/keys/{made['id']}/revoke-previous")
    assert revoked["previous_secret_expires_at"] is None
    refused_401(lambda: old.models.list(), "invalid_api_key")
    assert create(new, input="new").response.status == "completed"


def test_rotation_without_grace_ends_the_old_secret_at_once(keyed, backend):
    app, admin = keyed
    made = admin.key("hard rotate")
    rotation = admin.ok("POST", f"/keys/{made['id']}/rotate")
    assert rotation["previous_secret_expires_at"] is None
    refused_401(lambda: key_sdk(app, made).models.list(), "invalid_api_key")
    assert sdk_for(app, api_key=rotation["secret"]).models.list().data


def test_a_rotation_retried_with_its_idempotency_key_gives_the_same_secret(keyed, backend):
    app, admin = keyed
    made = admin.key("retried")
    path = f"/keys/{made['id']}/rotate"
    first = admin.call("POST", path, {"grace_seconds": 60}, **{"Idempotency-Key": "rot-1"})
    again = admin.call("POST", path, {"grace_seconds": 60}, **{"Idempotency-Key": "rot-1"})
    assert first.status_code == again.status_code == 200
    assert again.get_json()["secret"] == first.get_json()["secret"]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    other = admin.refused("POST", path, {"grace_seconds": 0}, 409, **{"Idempotency-Key": "rot-1"})
    assert other["code"] == "idempotency_key_reused"
    # One rotation happened: the first secret is the key's.
    assert sdk_for(app, api_key=first.get_json()["secret"]).models.list().data
    audit = admin.ok("GET", f"/audit?resource={made['id']}")["data"]
    assert [entry["action"] for entry in audit] == ["key.rotate", "key.create"]


def test_a_create_retried_with_its_idempotency_key_makes_one_key(keyed):
    _, admin = keyed
    headers = {"Idempotency-Key": "create-ci-key"}
    first = admin.ok("POST", "/keys", {"name": "once"}, 201, **headers)
    again = admin.ok("POST", "/keys", {"name": "once"}, 201, **headers)
    assert again == first
    assert [key["id"] for key in admin.ok("GET", "/keys")["data"]] == [first["id"]]
    bad = admin.refused("POST", "/keys", {"name": "x"}, 400, **{"Idempotency-Key": "é" * 300})
    assert bad["code"] == "invalid_header"


def test_a_failed_request_lets_its_idempotency_key_go(keyed):
    _, admin = keyed
    admin.key("taken")
    headers = {"Idempotency-Key": "retry-after-conflict"}
    assert admin.refused("POST", "/keys", {"name": "taken"}, 409, **headers)["code"] == (
        "key_name_taken"
    )
    admin.ok("DELETE", f"/keys/{admin.ok('GET', '/keys')['data'][0]['id']}")
    assert admin.ok("POST", "/keys", {"name": "taken"}, 201, **headers)["name"] == "taken"


def test_two_workers_on_one_store_agree_at_once_on_a_change(make_app, backend, tmp_path):
    shared = {**KEYS_MODE, "store_dsn": str(tmp_path / "shared.db")}
    first, second = make_app(**shared), make_app(**shared)
    made = AdminClient(first).key("shared")
    on_second = key_sdk(second, made)
    assert on_second.models.list().data  # cached on the second app now
    AdminClient(first).ok("PATCH", f"/keys/{made['id']}", {"status": "disabled"})
    refused_401(lambda: on_second.models.list(), "key_disabled")


def test_a_disabled_tenant_refuses_its_keys(keyed, backend):
    app, admin = keyed
    admin.tenant("team-a")
    made = admin.key("a key", tenant_id="team-a")
    sdk = key_sdk(app, made)
    assert sdk.models.list().data
    admin.ok("PATCH", "/tenants/team-a", {"status": "disabled"})
    refused_401(lambda: sdk.models.list(), "tenant_disabled")
    admin.ok("PATCH", "/tenants/team-a", {"status": "active"})
    assert sdk.models.list().data


def test_the_key_is_not_forwarded_in_passthrough_mode_either_when_the_backend_has_one(
    make_app, backend
):
    app = make_app(backends=[{"base_url": backend.base_url, "api_key": BACKEND_KEY}])
    create(sdk_for(app), input="Hi")
    assert backend.requests[-1].headers["authorization"] == f"Bearer {BACKEND_KEY}"


def test_a_stream_works_with_a_key(keyed, backend):
    app, admin = keyed
    backend.enqueue(fb.text("streamed"))
    with key_sdk(app, admin.key("streamer")).responses.stream(model=MODEL, input="Hi") as events:
        final = events.get_final_response()
    assert final.output_text == "streamed"


def test_a_request_still_holding_its_idempotency_key_is_a_409_until_its_claim_lapses(keyed):
    app, admin = keyed
    body = {"name": "claimed"}
    claimed = {"Idempotency-Key": "held"}
    digest = hashlib.sha256(json.dumps(body, separators=(",", ":")).encode()).hexdigest()
    with app.app_context(), db.connection_context():  # as if its worker died mid-request
        replays.claim(STATIC_ACTOR, "held", digest, int(time.time()) + 60)
    error = admin.refused("POST", "/keys", body, 409, **claimed)
    assert error["code"] == "idempotency_key_in_progress"
    assert admin.ok("GET", "/keys")["data"] == []
    with app.app_context(), db.connection_context():
        replays.claim(STATIC_ACTOR, "held", digest, int(time.time()) - 1)
    assert admin.ok("POST", "/keys", body, 201, **claimed)["name"] == "claimed"
