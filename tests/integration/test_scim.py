"""SCIM 2.0 Users, as an identity provider drives them, and what they do to sign-ins.

Create, list with `filter=userName eq "…"` and paging, get, PUT, PATCH
`Operations`, DELETE, each answered as SCIM (`application/scim+json`,
`ListResponse`, `Error` with `scimType`). A user set `active: false` is
refused at its next OIDC sign-in; a user's gateway extension decides the
role and tenant its sign-ins get. Only an admin of every tenant provisions.
"""

from __future__ import annotations

import pytest

from app.services.admin.scim import CORE, EXTENSION, PATCH
from tests.integration.tenancy import KEYS_MODE, AdminClient
from tests.integration.test_admin_sign_in import ADMIN_EVERYWHERE, AUDIENCE, Issuer, rsa_key

USERS = "/scim/v2/Users"


@pytest.fixture(scope="module")
def issuer():
    server = Issuer()
    server.keys = {"rsa-1": rsa_key()}
    yield server
    server.server.shutdown()


@pytest.fixture
def plane(make_app, issuer):
    app = make_app(**KEYS_MODE, oidc_issuer=issuer.url, oidc_audience=AUDIENCE)
    root = AdminClient(app)
    root.tenant("acme")
    return app, root


def scim_user(name: str, **extension) -> dict:
    body = {"schemas": [CORE], "userName": name, "displayName": name.title(), "active": True}
    if extension:
        body["schemas"].append(EXTENSION)
        body[EXTENSION] = extension
    return body


def test_users_are_made_listed_filtered_paged_changed_and_deleted(plane):
    _, root = plane
    made = root.call("POST", USERS, scim_user("alice@example.com", role="viewer"))
    assert made.status_code == 201 and made.mimetype == "application/scim+json"
    alice = made.get_json()
    assert alice["schemas"] == [CORE, EXTENSION] and alice["meta"]["resourceType"] == "User"
    assert alice["meta"]["location"].endswith(f"/Users/{alice['id']}")
    for name in ("bob@example.com", "carol@example.com"):
        root.ok("POST", USERS, scim_user(name), 201)
    page = root.ok("GET", f"{USERS}?startIndex=2&count=1")
    assert page["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:ListResponse"]
    assert (page["totalResults"], page["startIndex"], page["itemsPerPage"]) == (3, 2, 1)
    assert page["Resources"][0]["userName"] == "bob@example.com"
    found = root.ok("GET", f'{USERS}?filter=userName eq "ALICE@example.com"')
    assert [user["id"] for user in found["Resources"]] == [alice["id"]]
    patch = {
        "schemas": [PATCH],
        "Operations": [
            {"op": "replace", "path": "active", "value": False},
            {"op": "replace", "path": f"{EXTENSION}:tenant", "value": "acme"},
        ],
    }
    changed = root.ok("PATCH", f"{USERS}/{alice['id']}", patch)
    assert changed["active"] is False and changed[EXTENSION]["tenant"] == "acme"
    replaced = root.ok("PUT", f"{USERS}/{alice['id']}", scim_user("alice@example.com"))
    assert replaced["active"] is True and replaced[EXTENSION]["tenant"] is None
    assert root.call("DELETE", f"{USERS}/{alice['id']}").status_code == 204
    gone = root.call("GET", f"{USERS}/{alice['id']}")
    assert gone.status_code == 404 and gone.get_json()["status"] == "404"


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "scim_type"),
    [
        ("POST", USERS, {"schemas": [CORE]}, 400, "invalidValue"),
        ("POST", USERS, {"userName": "x", "active": "yes"}, 400, "invalidValue"),
        ("POST", USERS, {"userName": "x", EXTENSION: {"role": "owner"}}, 400, "invalidValue"),
        ("GET", f'{USERS}?filter=displayName co "a"', None, 400, "invalidFilter"),
        ("GET", f"{USERS}?count=many", None, 400, "invalidValue"),
    ],
)
def test_bad_requests_are_scim_errors_that_change_nothing(
    plane, method, path, body, status, scim_type
):
    _, root = plane
    answer = root.call(method, path, body)
    assert answer.status_code == status and answer.mimetype == "application/scim+json"
    error = answer.get_json()
    assert error["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
    assert (error["status"], error["scimType"]) == (str(status), scim_type) and error["detail"]
    assert root.ok("GET", USERS)["totalResults"] == 0


def test_a_second_user_of_one_name_and_bad_patches_are_refused(plane):
    _, root = plane
    user = root.ok("POST", USERS, scim_user("dave@example.com"), 201)
    taken = root.call("POST", USERS, scim_user("DAVE@example.com"))
    assert taken.status_code == 409 and taken.get_json()["scimType"] == "uniqueness"
    for patch, scim_type in (
        ({"Operations": [{"op": "replace", "path": "active", "value": False}]}, "invalidSyntax"),
        ({"schemas": [PATCH], "Operations": [{"op": "move", "path": "active"}]}, "invalidSyntax"),
        ({"schemas": [PATCH], "Operations": [{"op": "replace", "path": "emails"}]}, "invalidPath"),
        ({"schemas": [PATCH], "Operations": [{"op": "remove", "path": "userName"}]}, "mutability"),
    ):
        answer = root.call("PATCH", f"{USERS}/{user['id']}", patch)
        assert answer.status_code == 400 and answer.get_json()["scimType"] == scim_type
    assert root.ok("GET", f"{USERS}/{user['id']}")["active"] is True


def test_deactivating_a_user_refuses_its_next_sign_in_and_its_extension_scopes_it(plane, issuer):
    app, root = plane
    token = issuer.token("rsa-1", sub="erin@example.com", **ADMIN_EVERYWHERE)
    erin = AdminClient(app, token)
    assert len(erin.ok("GET", "/tenants")["data"]) == 2  # the claims: every tenant
    user = root.ok("POST", USERS, scim_user("erin@example.com", role="viewer", tenant="acme"), 201)
    assert [t["id"] for t in erin.ok("GET", "/tenants")["data"]] == ["acme"]
    assert erin.refused("POST", "/keys", {"name": "x"}, 403)  # a viewer now
    off = {"schemas": [PATCH], "Operations": [{"op": "replace", "value": {"active": False}}]}
    root.ok("PATCH", f"{USERS}/{user['id']}", off)
    assert erin.refused("GET", "/tenants", None, 401)["code"] == "user_deactivated"


def test_only_an_admin_of_every_tenant_provisions(plane):
    app, root = plane
    tenant_admin = root.ok(
        "POST", "/admin-tokens", {"name": "t", "role": "admin", "tenant_id": "acme"}, 201
    )
    answer = AdminClient(app, tenant_admin["token"]).call("POST", USERS, scim_user("x@y.z"))
    assert answer.status_code == 403 and answer.get_json()["status"] == "403"
    assert AdminClient(app, "wrong").call("GET", USERS).status_code == 401


def test_a_provisioned_user_needs_no_role_or_tenant_claims(plane, issuer):
    app, root = plane
    bare = issuer.token("rsa-1", sub="frank@example.com")  # no gateway claims at all
    assert AdminClient(app, bare).refused("GET", "/tenants", None, 401)
    root.ok("POST", USERS, scim_user("frank@example.com", role="admin", tenant="acme"), 201)
    frank = AdminClient(app, bare)
    assert [t["id"] for t in frank.ok("GET", "/tenants")["data"]] == ["acme"]
    assert frank.key("made-by-frank")["tenant_id"] == "acme"


def test_user_names_match_without_regard_to_case_beyond_ascii(plane, issuer):
    app, root = plane
    user = root.ok("POST", USERS, scim_user("Øystein@example.com"), 201)
    taken = root.call("POST", USERS, scim_user("øYSTEIN@example.com"))
    assert taken.status_code == 409
    off = {"schemas": [PATCH], "Operations": [{"op": "replace", "path": "active", "value": False}]}
    root.ok("PATCH", f"{USERS}/{user['id']}", off)
    token = issuer.token("rsa-1", sub="øystein@EXAMPLE.com", **ADMIN_EVERYWHERE)
    assert AdminClient(app, token).refused("GET", "/keys", None, 401)["code"] == "user_deactivated"


def test_an_admin_limited_to_key_prefixes_cannot_provision(plane):
    app, root = plane
    limited = root.ok(
        "POST",
        "/admin-tokens",
        {"name": "p", "role": "admin", "tenant_id": None, "allowed_key_prefixes": ["team-a"]},
        201,
    )
    answer = AdminClient(app, limited["token"]).call("POST", USERS, scim_user("x@y.z", tenant="*"))
    assert answer.status_code == 403
    assert root.ok("GET", USERS)["totalResults"] == 0


def test_a_deleted_user_stays_refused_until_provisioned_anew(plane, issuer):
    app, root = plane
    user = root.ok("POST", USERS, scim_user("gina@example.com", role="admin", tenant="acme"), 201)
    # Its IdP still hands out tokens whose claims would let it in everywhere.
    gina = AdminClient(app, issuer.token("rsa-1", sub="gina@example.com", **ADMIN_EVERYWHERE))
    assert [t["id"] for t in gina.ok("GET", "/tenants")["data"]] == ["acme"]
    assert root.call("DELETE", f"{USERS}/{user['id']}").status_code == 204
    assert gina.refused("GET", "/tenants", None, 401)["code"] == "user_deprovisioned"
    assert root.call("GET", f"{USERS}/{user['id']}").status_code == 404
    assert root.call("DELETE", f"{USERS}/{user['id']}").status_code == 404
    listed = root.ok("GET", f'{USERS}?filter=userName eq "gina@example.com"')
    assert listed["totalResults"] == 0
    again = root.ok("POST", USERS, scim_user("GINA@example.com", role="viewer", tenant="acme"), 201)
    assert again["id"] != user["id"]
    assert [t["id"] for t in gina.ok("GET", "/tenants")["data"]] == ["acme"]
    assert gina.refused("POST", "/keys", {"name": "x"}, 403)  # as the new user says: a viewer


def test_admin_tokens_made_by_a_signed_in_user_end_with_its_sign_in(plane, issuer):
    app, root = plane
    user = root.ok("POST", USERS, scim_user("hank@example.com", role="admin", tenant="acme"), 201)
    hank = AdminClient(app, issuer.token("rsa-1", sub="hank@example.com"))
    made = hank.ok("POST", "/admin-tokens", {"name": "ci", "role": "viewer"}, 201)
    assert made["created_by"] == "oidc:hank@example.com"
    minted = AdminClient(app, made["token"])
    assert minted.ok("GET", "/keys")["data"] == []
    off = {"schemas": [PATCH], "Operations": [{"op": "replace", "path": "active", "value": False}]}
    root.ok("PATCH", f"{USERS}/{user['id']}", off)
    assert minted.refused("GET", "/keys", None, 401)["code"] == "user_deactivated"
    on = {"schemas": [PATCH], "Operations": [{"op": "replace", "path": "active", "value": True}]}
    root.ok("PATCH", f"{USERS}/{user['id']}", on)
    assert minted.ok("GET", "/keys")["data"] == []
    assert root.call("DELETE", f"{USERS}/{user['id']}").status_code == 204
    assert minted.refused("GET", "/keys", None, 401)["code"] == "user_deprovisioned"
    # Tokens made by the gateway's own admins do not hang on any sign-in.
    plain = root.ok("POST", "/admin-tokens", {"name": "ops", "role": "viewer"}, 201)
    assert AdminClient(app, plain["token"]).ok("GET", "/keys")["data"] == []
