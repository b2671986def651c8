"""Helpers for the admin plane's tests: an app in keys mode, an admin client, keys it made."""

from __future__ import annotations

from typing import Any

import openai
from flask import Flask

from tests.conftest import sdk_for

ADMIN_TOKEN = "admin-token-for-tests-0123456789"
AUTH_SECRET = "auth-secret-for-tests-0123456789"
KEYS_MODE = {"auth": "keys", "admin_token": ADMIN_TOKEN, "auth_secret": AUTH_SECRET}


class AdminClient:
    """The admin API through Flask's test client, with the admin token."""

    def __init__(self, app: Flask, token: str = ADMIN_TOKEN) -> None:
        self.client = app.test_client()
        self.token = token

    def call(self, method: str, path: str, body: Any = None, **headers: str) -> Any:
        sent = {"Authorization": f"Bearer {self.token}", **headers}
        return self.client.open(f"/v1/gateway{path}", method=method, json=body, headers=sent)

    def ok(self, method: str, path: str, body: Any = None, status: int = 200, **headers: str):
        """The JSON answer of a call that must succeed with `status`."""
        response = self.call(method, path, body, **headers)
        assert response.status_code == status, (response.status_code, response.get_json())
        return response.get_json()

    def refused(self, method: str, path: str, body: Any, status: int, **headers: str):
        """The `error` object of a call that must fail with `status`."""
        response = self.call(method, path, body, **headers)
        assert response.status_code == status, (response.status_code, response.get_json())
        error = response.get_json()["error"]
        assert set(error) == {"message", "type", "param", "code"} and error["message"]
        return error

    def tenant(self, tenant_id: str, **body: Any) -> dict[str, Any]:
        return self.ok("POST", "/tenants", {"id": tenant_id, "name": tenant_id, **body}, 201)

    def key(self, name: str, **body: Any) -> dict[str, Any]:
        """A new key (its answer holds `secret`, the token)."""
        return self.ok("POST", "/keys", {"name": name, **body}, 201)


def key_sdk(app: Flask, key: dict[str, Any]) -> openai.OpenAI:
    """The openai client, sending the key's token."""
    return sdk_for(app, api_key=key["secret"])
