"""A key's limits, budgets and ledger, through the real openai client and the admin API.

Requests per minute, tokens per minute and requests at once answer 429 in
OpenAI's shape with `x-ratelimit-*` and `retry-after`, before anything is
sent upstream; a spent budget is 429 `insufficient_quota` with
`x-should-retry: false`; an unpriced model under a budget is 400. Every
request of a key - completed, failed upstream, streamed, cut, left by the
client - has one ledger row, written with the response, billed for what was
produced. Admissions are exact under concurrency on SQLite and PostgreSQL
(many threads, one connection each, on one store).
"""

from __future__ import annotations

import csv
import io
import threading
import time

import openai
import pytest

from app.auth.principal import BudgetRef
from app.services import limits
from app.services.admin.budgets import check_group
from app.store import db
from app.store import limits as store_limits
from app.store.budgets import get_budget, put_budget
from app.store.writes import write_transaction
from tests import fakebackend as fb
from tests.integration.helpers import MODEL, assert_openai_error, create, stream
from tests.integration.tenancy import KEYS_MODE, AdminClient, key_sdk

# A micro-USD a token in and two out: costs are easy to read off the usage.
PRICES = {
    "prices": [
        {
            "model": MODEL,
            "input_micros_per_million": 1_000_000,
            "cached_input_micros_per_million": 500_000,
            "output_micros_per_million": 2_000_000,
            "max_output_tokens": 100,
        }
    ]
}


@pytest.fixture
def keyed(make_app):
    app = make_app(**KEYS_MODE)
    return app, AdminClient(app)


def refused(call, error_class, status: int = 429) -> tuple[dict, dict]:
    with pytest.raises(error_class) as caught:
        call()
    error = assert_openai_error(caught.value, status)
    return error, dict(caught.value.response.headers)


def ledger(admin: AdminClient, **query: str) -> list[dict]:
    text = "&".join(f"{name}={value}" for name, value in query.items())
    return admin.ok("GET", f"/ledger?{text}")["data"]


# --- rate limits ------------------------------------------------------------------


def test_requests_per_minute_refuse_the_one_over_with_openai_headers(keyed, backend):
    app, admin = keyed
    sdk = key_sdk(app, admin.key("ci", rpm_limit=2))
    first = create(sdk, input="one")
    assert first.headers["x-ratelimit-limit-requests"] == "2"
    assert first.headers["x-ratelimit-remaining-requests"] == "1"
    create(sdk, input="two")
    sent = len(backend.requests)
    error, headers = refused(
        lambda: sdk.responses.create(model=MODEL, input="three"), openai.RateLimitError
    )
    assert (error["type"], error["code"]) == ("requests", "rate_limit_exceeded")
    assert "requests per minute" in error["message"]
    assert headers["x-ratelimit-remaining-requests"] == "0"
    assert 1 <= int(headers["retry-after"]) <= 60
    assert headers["x-ratelimit-reset-requests"].endswith("s")
    assert len(backend.requests) == sent, "a refused request went upstream"
    assert len(ledger(admin)) == 2, "a refused request is not in the ledger"


def test_tokens_per_minute_count_the_estimate_and_refuse_a_request_too_large(keyed, backend):
    app, admin = keyed
    sdk = key_sdk(app, admin.key("ci", tpm_limit=500))
    create(sdk, input="small", max_output_tokens=100)
    error, headers = refused(
        lambda: sdk.responses.create(model=MODEL, input="x" * 4000, max_output_tokens=100),
        openai.RateLimitError,
    )
    assert (error["type"], error["code"]) == ("tokens", "rate_limit_exceeded")
    assert headers["x-ratelimit-limit-tokens"] == "500"
    assert len(backend.requests) == 1


def test_parallel_requests_hold_a_slot_until_their_stream_ends(keyed, backend):
    app, admin = keyed
    sdk = key_sdk(app, admin.key("ci", max_parallel_requests=1))
    backend.enqueue(fb.text("a long answer " * 20))
    held = sdk.responses.create(model=MODEL, input="first", stream=True)
    next(iter(held))  # the stream is open: its slot is taken
    error, headers = refused(
        lambda: sdk.responses.create(model=MODEL, input="second"), openai.RateLimitError
    )
    assert "in flight" in error["message"] and headers["retry-after"] == "1"
    for _ in held:
        pass
    assert create(sdk, input="third").response.status == "completed"


# --- budgets ----------------------------------------------------------------------


def test_a_budget_admits_what_fits_then_refuses_with_insufficient_quota(keyed, backend):
    app, admin = keyed
    admin.ok("PUT", "/prices", PRICES)
    # Each request reserves its input estimate plus 100 output tokens: about 300 µUSD.
    key = admin.key("ci", max_budget_usd=0.0005, budget_period="daily")
    sdk = key_sdk(app, key)
    backend.enqueue(
        fb.text("ok", usage={"prompt_tokens": 100, "completion_tokens": 100, "total_tokens": 200})
    )
    create(sdk, input="one")  # costs 100 + 200 = 300 µUSD
    usage = admin.ok("GET", f"/keys/{key['id']}")["usage"]
    assert usage["period_spend_usd"] == pytest.approx(0.0003)
    assert usage["reserved_usd"] == 0
    sent = len(backend.requests)
    error, headers = refused(
        lambda: sdk.responses.create(model=MODEL, input="two"), openai.RateLimitError
    )
    assert (error["type"], error["code"]) == ("insufficient_quota", "budget_exceeded")
    assert headers["x-should-retry"] == "false"
    assert len(backend.requests) == sent


def test_an_unpriced_model_under_a_budget_is_refused_before_it_is_sent(keyed, backend):
    app, admin = keyed
    sdk = key_sdk(app, admin.key("ci", max_budget_usd=1))
    error, _ = refused(
        lambda: sdk.responses.create(model=MODEL, input="hi"), openai.BadRequestError, 400
    )
    assert (error["code"], error["param"]) == ("model_price_unknown", "model")
    assert not backend.requests


def test_a_shared_budget_and_the_tenants_budget_count_every_key_in_them(keyed, backend):
    app, admin = keyed
    admin.ok("PUT", "/prices", PRICES)
    group = admin.ok("POST", "/budgets", {"name": "team", "max_budget_usd": 0.0005}, 201)
    first = key_sdk(app, admin.key("one", budget_id=group["id"]))
    second = key_sdk(app, admin.key("two", budget_id=group["id"]))
    usage = {"prompt_tokens": 100, "completion_tokens": 100, "total_tokens": 200}
    backend.enqueue(fb.text("ok", usage=usage))
    create(first, input="spend")
    assert admin.ok("GET", f"/budgets/{group['id']}")["usage"]["period_spend_usd"] == (
        pytest.approx(0.0003)
    )
    error, _ = refused(
        lambda: second.responses.create(model=MODEL, input="more"), openai.RateLimitError
    )
    assert error["code"] == "budget_exceeded" and group["id"] in error["message"]
    admin.ok("PATCH", "/tenants/default", {"max_budget_usd": 0.0001})
    other = key_sdk(app, admin.key("three"))
    error, _ = refused(
        lambda: other.responses.create(model=MODEL, input="x"), openai.RateLimitError
    )
    assert "tenant:default" in error["message"]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"name": "k", "max_budget_usd": -1}, "max_budget_usd"),
        ({"name": "k", "max_budget_usd": 1, "budget_period": "hourly"}, "budget_period"),
        ({"name": "k", "max_budget_usd": 1, "budget_timezone": "Mars/Olympus"}, "budget_timezone"),
        ({"name": "k", "rpm_limit": 0}, "rpm_limit"),
        ({"name": "k", "max_parallel_requests": "2"}, "max_parallel_requests"),
        ({"name": "k", "budget_id": "bud_missing"}, "budget_id"),
        ({"name": "k", "budget_period": "daily"}, "max_budget_usd"),
    ],
)
def test_malformed_limits_are_a_400_naming_the_parameter(keyed, body, param):
    _, admin = keyed
    error = admin.refused("POST", "/keys", body, 400)
    assert error["param"] == param, error
    assert admin.ok("GET", "/keys")["data"] == []


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({}, "prices"),
        ({"prices": []}, "prices"),
        ({"prices": [{"model": MODEL, "input_micros_per_million": 1}]}, "prices"),
        ({"prices": [{**PRICES["prices"][0], "output_micros_per_million": -1}]}, "prices"),
        ({"prices": [PRICES["prices"][0], PRICES["prices"][0]]}, "prices"),
    ],
)
def test_malformed_price_tables_are_a_400(keyed, body, param):
    _, admin = keyed
    error = admin.refused("PUT", "/prices", body, 400)
    assert error["param"].startswith(param), error
    assert admin.ok("GET", "/prices")["version"] == 0


def test_prices_are_versioned_and_a_ledger_row_names_its_version(keyed, backend):
    app, admin = keyed
    assert admin.ok("PUT", "/prices", PRICES)["version"] == 1
    sdk = key_sdk(app, admin.key("ci"))
    create(sdk, input="at one")
    doubled = {"prices": [{**PRICES["prices"][0], "input_micros_per_million": 2_000_000}]}
    assert admin.ok("PUT", "/prices", doubled)["version"] == 2
    table = admin.ok("GET", "/prices")
    assert table["data"][0]["input_micros_per_million"] == 2_000_000
    limits.forget_prices()
    create(sdk, input="at two")
    rows = ledger(admin)
    assert [row["price_version"] for row in rows] == [2, 1]  # newest first
    for row, input_price in zip(rows, (2, 1), strict=True):
        expected = row["input_tokens"] * input_price + row["output_tokens"] * 2
        assert row["cost_usd"] == pytest.approx(expected / 1e6)


# --- the ledger -------------------------------------------------------------------


def test_every_end_of_a_request_has_its_ledger_row(keyed, backend):
    app, admin = keyed
    admin.ok("PUT", "/prices", PRICES)
    sdk = key_sdk(app, admin.key("ci", project_id="search"))
    done = create(sdk, input="json")
    streamed = stream(sdk, input="stream")
    backend.enqueue(fb.error(500))
    with pytest.raises(openai.InternalServerError):
        sdk.responses.create(model=MODEL, input="fails")
    backend.enqueue(fb.cut("partial answer that is cut", after_chunks=3))
    list(sdk.responses.create(model=MODEL, input="cut", stream=True))
    rows = {row["response_id"]: row for row in ledger(admin)}
    assert len(rows) == 4
    json_row = rows[done.response.id]
    assert json_row | {"id": "-", "created_at": 0, "completed_at": 0} == {
        **json_row,
        "id": "-",
        "created_at": 0,
        "completed_at": 0,
        "key_name": "ci",
        "project_id": "search",
        "model": MODEL,
        "endpoint": "responses",
        "status": "completed",
        "http_status": 200,
        "input_tokens": done.response.usage.input_tokens,
        "output_tokens": done.response.usage.output_tokens,
        "stream": False,
        "estimated": False,
        "price_version": 1,
    }
    usage = done.response.usage
    assert json_row["cost_usd"] == pytest.approx(
        (usage.input_tokens * 1 + usage.output_tokens * 2) / 1e6
    )
    assert rows[streamed.response.id]["stream"] is True
    failed = [row for row in rows.values() if row["http_status"] == 500]
    assert len(failed) == 1 and failed[0]["status"] == "failed" and failed[0]["cost_usd"] == 0
    assert failed[0]["error_code"]
    cut_row = next(row for row in rows.values() if row["status"] == "failed" and row["stream"])
    assert cut_row["estimated"] is True and cut_row["output_tokens"] > 0


def test_the_ledger_filters_in_sql_and_pages_by_its_ids(keyed, backend):
    app, admin = keyed
    one, two = admin.key("one"), admin.key("two")
    for _ in range(3):
        create(key_sdk(app, one), input="a")
    create(key_sdk(app, two), input="b")
    assert len(ledger(admin, key_id=one["id"])) == 3
    assert len(ledger(admin, key_id=two["id"], status="completed")) == 1
    assert ledger(admin, status="failed") == []
    first = admin.ok("GET", "/ledger?limit=2")
    assert first["has_more"] and len(first["data"]) == 2
    rest = admin.ok("GET", f"/ledger?limit=2&after={first['last_id']}")
    assert not rest["has_more"] and len(rest["data"]) == 2
    assert {row["id"] for row in first["data"]}.isdisjoint({row["id"] for row in rest["data"]})
    future = int(time.time()) + 3600
    assert ledger(admin, start=str(future)) == []
    admin.refused("GET", "/ledger?status=lost", None, 400)
    admin.refused("GET", "/ledger?start=yesterday", None, 400)


def test_the_csv_export_is_whole_and_neutralises_formulas(keyed, backend):
    app, admin = keyed
    key = admin.key("=HYPERLINK(evil)")
    for _ in range(3):
        create(key_sdk(app, key), input="a")
    response = admin.call("GET", "/ledger.csv")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    text = response.get_data(as_text=True)
    assert text.endswith("\r\n")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 3
    assert all(row["key_name"] == "'=HYPERLINK(evil)" for row in rows)
    assert rows[0]["cost_usd"] == "0.000000" and rows[0]["stream"] == "false"


def test_usage_summaries_group_in_sql(keyed, backend):
    app, admin = keyed
    admin.ok("PUT", "/prices", PRICES)
    one, two = admin.key("one"), admin.key("two")
    for _ in range(2):
        create(key_sdk(app, one), input="a")
    create(key_sdk(app, two), input="b")
    summary = admin.ok("GET", "/usage/summary?group_by=key,day")
    by_key = {row["key_name"]: row for row in summary["data"]}
    assert by_key["one"]["requests"] == 2 and by_key["two"]["requests"] == 1
    assert by_key["one"]["day"] % 86400 == 0
    total = admin.ok("GET", "/usage/summary")["data"][0]
    assert total["requests"] == 3
    assert total["cost_usd"] == pytest.approx(by_key["one"]["cost_usd"] + by_key["two"]["cost_usd"])
    tenant = admin.ok("GET", "/tenants/default/usage")
    assert tenant["requests"] == 3 and tenant["by_model"][0]["model"] == MODEL
    lines = admin.call("GET", "/usage/summary.csv?group_by=model").get_data(as_text=True)
    assert lines.splitlines()[0].startswith("model,") and len(lines.splitlines()) == 2
    error = admin.refused("GET", "/usage/summary?group_by=colour", None, 400)
    assert error["param"] == "group_by"


def test_passthrough_callers_are_not_in_the_ledger(make_app, backend):
    from tests.conftest import sdk_for
    from tests.integration.tenancy import ADMIN_TOKEN

    app = make_app(admin_token=ADMIN_TOKEN)
    create(sdk_for(app), input="hi")
    assert AdminClient(app).ok("GET", "/ledger")["data"] == []


# --- exact under concurrency ------------------------------------------------------

CONCURRENT = 24
ESTIMATE = 1000  # µUSD each request reserves
FITS = 7


def test_concurrent_reservations_admit_exactly_what_fits(make_app, fresh_store):
    """Threads with a connection each race for one budget: exactly ⌊budget / estimate⌋ win."""
    make_app(**fresh_store)  # binds the store and migrates it
    with db.connection_context():
        limit = {"limit_micros": FITS * ESTIMATE + ESTIMATE - 1, "period": "none"}
        write_transaction(lambda: put_budget("bud_race", "default", "group", limit))
    start = threading.Barrier(CONCURRENT)
    admitted: list[store_limits.Held] = []
    refusals: list[str] = []

    def one(n: int) -> None:
        def admit() -> store_limits.Held:
            return store_limits.admit(
                f"vk_{n}",
                rpm=None,
                tpm=None,
                max_parallel=None,
                tokens=10,
                budgets=[("bud_race", 0)],
                amount=ESTIMATE,
                ttl=60,
            )

        with db.connection_context():
            start.wait()
            try:
                admitted.append(write_transaction(admit, wait=30))
            except store_limits.Refused as refusal:
                refusals.append(refusal.which)

    threads = [threading.Thread(target=one, args=(n,)) for n in range(CONCURRENT)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(admitted) == FITS and refusals == ["budget"] * (CONCURRENT - FITS)
    with db.connection_context():
        assert get_budget("bud_race").reserved_micros == FITS * ESTIMATE
        for held in admitted:
            write_transaction(lambda h=held: store_limits.settle(h, "vk", 10, 10))
        settled = get_budget("bud_race")
        assert (settled.reserved_micros, settled.spent_micros) == (0, FITS * 10)
        # A second settle (or one after the sweep released it) charges but gives back nothing.
        write_transaction(lambda: store_limits.settle(admitted[0], "vk", 10, 10))
        again = get_budget("bud_race")
        assert (again.reserved_micros, again.spent_micros) == (0, FITS * 10 + 10)


def test_a_period_rolls_inside_the_reserving_statement():
    now = time.mktime((2026, 12, 2, 15, 0, 0, 0, 0, 0)) - time.timezone
    daily = limits.period_start(BudgetRef("b", "daily"), now)
    weekly = limits.period_start(BudgetRef("b", "weekly"), now)
    monthly = limits.period_start(BudgetRef("b", "monthly"), now)
    assert daily % 86400 == 0 and now - daily == 15 * 3600
    assert weekly == daily - 2 * 86400  # 2026-12-02 is a Wednesday
    assert monthly == daily - 86400
    paris = limits.period_start(BudgetRef("b", "daily", "Europe/Paris"), now)
    assert daily - paris == 3600


# --- budget alerts ----------------------------------------------------------------


class Receiver:
    """The operator's webhook: a loopback HTTP server keeping every POST."""

    def __init__(self) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.posts: list[tuple[dict, bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.posts.append((dict(self.headers), body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


WEBHOOK_SECRET = "webhook-secret-0123456789"


def test_soft_and_percent_thresholds_are_told_once_each_signed(make_app, backend):
    import hashlib
    import hmac
    import json

    receiver = Receiver()
    app = make_app(
        **KEYS_MODE, budget_webhook_url=receiver.url, budget_webhook_secret=WEBHOOK_SECRET
    )
    admin = AdminClient(app)
    admin.ok("PUT", "/prices", PRICES)
    key = admin.key("alerted", max_budget_usd=0.001, soft_budget_usd=0.00025)
    sdk = key_sdk(app, key)
    usage = {"prompt_tokens": 100, "completion_tokens": 100, "total_tokens": 200}
    told = []
    for expected in (["soft"], ["50%"], ["80%"], ["100%"]):
        backend.enqueue(fb.text("ok", usage=usage))
        create(sdk, input="x", max_output_tokens=16)  # reserves little; costs 300 µUSD
        deadline = time.monotonic() + 5
        while len(receiver.posts) < len(told) + len(expected) and time.monotonic() < deadline:
            time.sleep(0.02)
        told += expected
        assert [json.loads(body)["threshold"] for _, body in receiver.posts] == told
    headers, body = receiver.posts[-1]
    stamp, digest = (part.split("=", 1)[1] for part in headers["X-Gateway-Signature"].split(","))
    expected = hmac.new(WEBHOOK_SECRET.encode(), f"{stamp}.".encode() + body, hashlib.sha256)
    assert hmac.compare_digest(digest, expected.hexdigest())
    alert = json.loads(body)
    assert alert["budget_id"] == f"key:{key['id']}" and alert["spent_usd"] == pytest.approx(0.0012)
    receiver.server.shutdown()


def test_a_budget_webhook_needs_its_secret(make_app):
    from app.config import ConfigError

    with pytest.raises(ConfigError, match="budget_webhook_secret"):
        make_app(**KEYS_MODE, budget_webhook_url="http://127.0.0.1:9/hook")


def test_summaries_by_day_run_on_each_database(make_app, fresh_store, backend):
    app = make_app(**KEYS_MODE, **fresh_store)
    admin = AdminClient(app)
    create(key_sdk(app, admin.key("k")), input="a")
    (row,) = admin.ok("GET", "/usage/summary?group_by=day,model")["data"]
    assert row["day"] % 86400 == 0 and row["requests"] == 1
    lines = admin.call("GET", "/usage/summary.csv?group_by=day").get_data(as_text=True)
    assert lines.splitlines()[0].startswith("day,requests,")


@pytest.mark.parametrize(
    ("method", "path", "body", "param"),
    [
        ("POST", "/budgets", {"name": "b", "max_budget_usd": None}, "max_budget_usd"),
        ("POST", "/keys", {"name": "k", "expires_at": 10**20}, "expires_at"),
        ("GET", f"/ledger?start={10**20}", None, "start"),
        ("GET", "/ledger?order=asc", None, "order"),
        ("GET", "/ledger?before=led_x", None, "before"),
    ],
)
def test_out_of_range_admin_input_is_a_400(keyed, method, path, body, param):
    _, admin = keyed
    assert admin.refused(method, path, body, 400)["param"] == param


def test_a_stale_if_match_on_a_shared_budget_is_a_412(keyed):
    _, admin = keyed
    group = admin.ok("POST", "/budgets", {"name": "g", "max_budget_usd": 1}, 201)
    stale = 'W/"1"'
    admin.ok("PATCH", f"/budgets/{group['id']}", {"max_budget_usd": 2}, **{"If-Match": stale})
    admin.refused(
        "PATCH", f"/budgets/{group['id']}", {"max_budget_usd": 3}, 412, **{"If-Match": stale}
    )
    assert admin.ok("GET", f"/budgets/{group['id']}")["max_budget_usd"] == 2


def test_a_budget_is_not_deleted_under_a_key_moving_into_it_on_postgres(make_app, fresh_postgres):
    # Two admins at once on PostgreSQL: one moves a key into a shared budget while the
    # other deletes that budget. The move holds the budget's row; the deletion waits for
    # it, then sees the key and refuses. Never a key counting in a budget that is gone.
    app = make_app(**KEYS_MODE, **fresh_postgres)
    admin = AdminClient(app)
    group = admin.ok("POST", "/budgets", {"name": "team", "max_budget_usd": 1}, 201)
    key = admin.key("mover")
    moving, may_commit = threading.Event(), threading.Event()

    def move_in() -> None:
        def change() -> None:
            check_group(group["id"], "default")  # takes the budget's row
            db.execute_sql(
                "UPDATE virtual_keys SET budget_id = %s WHERE id = %s", (group["id"], key["id"])
            )
            moving.set()
            assert may_commit.wait(10)

        with db.connection_context():
            write_transaction(change)

    mover = threading.Thread(target=move_in)
    mover.start()
    assert moving.wait(10)
    answers: list = []
    deleter = threading.Thread(
        target=lambda: answers.append(admin.call("DELETE", f"/budgets/{group['id']}"))
    )
    deleter.start()
    deleter.join(0.5)
    assert deleter.is_alive(), "the deletion did not wait for the key's move"
    may_commit.set()
    mover.join(10)
    deleter.join(10)
    assert answers[0].status_code == 409
    assert answers[0].get_json()["error"]["code"] == "budget_in_use"
    assert admin.ok("GET", f"/keys/{key['id']}")["budget_id"] == group["id"]
    assert admin.ok("GET", f"/budgets/{group['id']}")["id"] == group["id"]


# --- settling when the store fails, periods, lock order ------------------------------


def test_a_request_whose_store_failed_still_settles_once_the_store_works(keyed, backend):
    app, admin = keyed
    admin.ok("PUT", "/prices", PRICES)
    key = admin.key("once", max_parallel_requests=1, max_budget_usd=1)
    sdk = key_sdk(app, key)
    # A real failure of the store, while the flag is up, in the response's transaction
    # after the settlement's first writes: its ledger row (written with the answer's 200).
    with db.connection_context():
        db.execute_sql("CREATE TABLE refuse (flag INTEGER)")
        db.execute_sql("INSERT INTO refuse VALUES (1)")
        db.execute_sql(
            "CREATE TRIGGER refuse_ledger BEFORE INSERT ON ledger "
            "WHEN NEW.http_status = 200 AND (SELECT count(*) FROM refuse) > 0 "
            "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
        )
    with pytest.raises(openai.InternalServerError) as caught:
        sdk.responses.create(model=MODEL, input="lost")
    assert "could not be stored" in assert_openai_error(caught.value, 503)["message"]
    # The response's transaction rolled back; the request settled after it, on its own.
    (row,) = ledger(admin)
    assert (row["status"], row["http_status"]) == ("completed", 503)
    usage = admin.ok("GET", f"/keys/{key['id']}")["usage"]
    assert usage["reserved_usd"] == 0 and usage["period_spend_usd"] > 0
    with db.connection_context():
        db.execute_sql("DELETE FROM refuse")
    assert create(sdk, input="next").body["status"] == "completed"  # its slot came back


def test_a_charge_counts_in_the_period_current_when_the_request_ends(make_app, fresh_store):
    make_app(**fresh_store)
    day = 86_400
    with db.connection_context():
        budget = {"limit_micros": 10_000, "period": "daily"}
        write_transaction(lambda: put_budget("bud_day", "default", "group", budget))

        def admit() -> store_limits.Held:
            return store_limits.admit(
                "vk_day",
                rpm=None,
                tpm=None,
                max_parallel=None,
                tokens=10,
                budgets=[("bud_day", day)],
                amount=500,
                ttl=60,
                now=day + 100,
            )

        first, second = write_transaction(admit), write_transaction(admit)
        write_transaction(lambda: store_limits.settle(first, "vk_day", 300, 10, {"bud_day": day}))
        assert get_budget("bud_day").spent_micros == 300
        # The next day has begun when the second one ends: its cost starts that day's count.
        periods = {"bud_day": 2 * day}
        write_transaction(lambda: store_limits.settle(second, "vk_day", 200, 10, periods))
        rolled = get_budget("bud_day")
    assert (rolled.period_start, rolled.spent_micros, rolled.reserved_micros) == (2 * day, 200, 0)


def test_admissions_and_settlements_of_one_key_never_deadlock_on_postgres(make_app, fresh_postgres):
    # Each takes the key's minute, its slot and its budget; settling gives them back in the
    # same order, so threads admitting and settling at once wait in line, never in a circle.
    make_app(**fresh_postgres)
    with db.connection_context():
        budget = {"limit_micros": 10**12, "period": "none"}
        write_transaction(lambda: put_budget("bud_busy", "default", "group", budget))
    failures: list[BaseException] = []
    start = threading.Barrier(8)

    def admit() -> store_limits.Held:
        return store_limits.admit(
            "vk_busy",
            rpm=10**6,
            tpm=10**9,
            max_parallel=100,
            tokens=10,
            budgets=[("bud_busy", 0)],
            amount=5,
            ttl=60,
        )

    def worker() -> None:
        with db.connection_context():
            start.wait()
            try:
                for _ in range(25):
                    held = write_transaction(admit)
                    write_transaction(lambda h=held: store_limits.settle(h, "vk_busy", 1, 12))
            except BaseException as exc:
                failures.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert failures == []
    with db.connection_context():
        settled = get_budget("bud_busy")
        inflight = db.execute_sql("SELECT inflight FROM key_inflight").fetchone()[0]
    assert (settled.spent_micros, settled.reserved_micros, inflight) == (200, 0, 0)


def test_the_sweep_gives_back_what_a_request_that_never_ended_held(make_app, fresh_store):
    make_app(**fresh_store)
    with db.connection_context():
        write_transaction(
            lambda: put_budget("bud_lost", "default", "group", {"limit_micros": 10_000})
        )

        def admit() -> store_limits.Held:
            return store_limits.admit(
                "vk_lost",
                rpm=None,
                tpm=None,
                max_parallel=1,
                tokens=10,
                budgets=[("bud_lost", 0)],
                amount=700,
                ttl=60,
                now=1000.0,
            )

        held = write_transaction(admit)
        assert get_budget("bud_lost").reserved_micros == 700
        assert limits.release_expired(now=1059.0) == 0  # not lapsed yet
        assert limits.release_expired(now=1061.0) == 1  # its worker died: the sweep frees it
        inflight = db.execute_sql("SELECT inflight FROM key_inflight").fetchone()[0]
        assert (get_budget("bud_lost").reserved_micros, inflight) == (0, 0)
        write_transaction(admit)  # the slot is free again
        # The request ends after all: it is charged, and gives back nothing twice.
        write_transaction(lambda: store_limits.settle(held, "vk_lost", 300, 10))
        after = get_budget("bud_lost")
    assert (after.spent_micros, after.reserved_micros) == (300, 700)
