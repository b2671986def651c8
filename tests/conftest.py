"""Shared fixtures: the fake model backend, gateway apps, SDK clients, stores.

- `backend`: one real fake Chat Completions server per session, reset per test.
- `make_app(**overrides)`: a fresh gateway app on its own SQLite file.
- `client`: Flask test client of a default app; `sdk`: the real `openai`
  client talking to that same app in-process (httpx WSGI transport).
- `store_settings`: parametrised over SQLite and PostgreSQL (a throwaway
  database on GATEWAY_TEST_PG_DSN, shared by the session; skipped with the
  reason if unreachable); `fresh_store`: the same, empty, for one test.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import openai
import pytest
from flask import Flask

from app import create_app

try:  # openai 3.x ships its transport as httpx2
    import httpx2 as httpx
except ImportError:  # pragma: no cover - openai 1.x/2.x
    import httpx
from tests.fakebackend import FakeBackend

# Fixtures that start the gateway as a process (gunicorn), and an https backend.
pytest_plugins = ["tests.e2e.gateway_process", "tests.tls"]

PG_DSN = os.environ.get("GATEWAY_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
TEST_KEY = "sk-test-0123456789abcdefghijklmnop"


@pytest.fixture(scope="session")
def backend_server() -> Iterator[FakeBackend]:
    server = FakeBackend(models=["fake-model", "other-model"]).start()
    yield server
    server.stop()


@pytest.fixture
def backend(backend_server: FakeBackend) -> FakeBackend:
    backend_server.reset()
    return backend_server


@pytest.fixture
def make_app(tmp_path: Any, backend: FakeBackend) -> Callable[..., Flask]:
    def build(**overrides: Any) -> Flask:
        settings: dict[str, Any] = {
            "store_dsn": str(tmp_path / f"gateway-{uuid.uuid4().hex[:8]}.db"),
            "file_store_base_dir": str(tmp_path / "files"),
            "backends": [{"base_url": backend.base_url}],
        }
        settings.update(overrides)
        return create_app(settings)

    return build


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    return make_app()


@pytest.fixture
def client(app: Flask) -> Any:
    return app.test_client()


def sdk_for(app: Flask, **kwargs: Any) -> openai.OpenAI:
    """The real openai client, sending its HTTP requests straight into `app`."""
    transport = httpx.WSGITransport(app=app)
    options = {"api_key": TEST_KEY, "max_retries": 0, **kwargs}
    return openai.OpenAI(
        base_url="http://gateway.test/v1", http_client=httpx.Client(transport=transport), **options
    )


@pytest.fixture
def sdk(app: Flask) -> openai.OpenAI:
    return sdk_for(app)


def _postgres_database() -> Iterator[str]:
    psycopg = pytest.importorskip("psycopg")
    try:
        admin = psycopg.connect(PG_DSN, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL not reachable at {PG_DSN}: {exc}")
    name = f"gateway_test_{uuid.uuid4().hex[:10]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    base = PG_DSN.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture(scope="session")
def postgres_dsn() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session."""
    yield from _postgres_database()


@pytest.fixture
def fresh_postgres() -> Iterator[dict[str, Any]]:
    """Store settings for an empty PostgreSQL database made for this test alone."""
    for dsn in _postgres_database():
        yield {"store_type": "postgres", "store_dsn": dsn}


@pytest.fixture(params=["sqlite", "postgres"])
def fresh_store(request: pytest.FixtureRequest, tmp_path: Any) -> dict[str, Any]:
    """Store settings for an empty database of each kind, made for this test alone."""
    if request.param == "postgres":
        return request.getfixturevalue("fresh_postgres")
    return {"store_type": "sqlite", "store_dsn": str(tmp_path / "fresh.db")}


@pytest.fixture(params=["sqlite", "postgres"])
def store_settings(request: pytest.FixtureRequest, tmp_path: Any) -> dict[str, Any]:
    """Store settings for each supported database."""
    if request.param == "postgres":
        dsn = request.getfixturevalue("postgres_dsn")
        return {"store_type": "postgres", "store_dsn": dsn}
    return {"store_type": "sqlite", "store_dsn": str(tmp_path / "store.db")}
