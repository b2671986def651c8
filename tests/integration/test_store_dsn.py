"""The store's DSN reaches the database driver whole: query parameters and quoted passwords.

A PostgreSQL URL is read the way peewee's db_url reads one; its query
parameters go to psycopg as they are, and a percent-quoted password is
given unquoted. Shown on the real server's connection the gateway opens:
it carries the DSN's `application_name` (with `connect_timeout` and
`sslmode` accepted beside it), and the driver holds the password as
written before quoting.
"""

from __future__ import annotations

import uuid

from app.store import db


def test_query_parameters_reach_the_connection(make_app, fresh_postgres):
    name = f"gw-{uuid.uuid4().hex[:8]}"
    dsn = f"{fresh_postgres['store_dsn']}?application_name={name}&connect_timeout=5&sslmode=disable"
    app = make_app(store_dsn=dsn)
    with app.app_context(), db.connection_context():
        assert db.execute_sql("SELECT current_setting('application_name')").fetchone()[0] == name
        assert db.connection().info.get_parameters()["connect_timeout"] == "5"


def test_a_quoted_password_is_given_unquoted(make_app, fresh_postgres):
    scheme, rest = fresh_postgres["store_dsn"].split("://", 1)
    user, where = rest.split("@", 1)
    app = make_app(store_dsn=f"{scheme}://{user}:p%40ss%3Aw%2Frd@{where}")
    with app.app_context(), db.connection_context():
        info = db.connection().info
        assert (info.user, info.password) == (user, "p@ss:w/rd")
