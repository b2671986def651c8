"""Keys' rate limits counted in a real Redis (`GATEWAY_REDIS_URL`), through the openai client.

The same promises as in the database: RPM, TPM and requests in flight
refuse with OpenAI's 429 and `x-ratelimit-*` before anything is sent, a
stream holds its slot until it ends, the minute's tokens are corrected to
what was used, a budget refusal gives back what Redis took, and N threads
admit exactly what the limits allow. Nothing of it is written to the
database's rate tables. A request that never ends stops holding its slot
when its hold lapses; Redis unreachable refuses requests with a 503.

Uses the Redis on 127.0.0.1:6379 (skipped, saying so, where there is none).
"""

from __future__ import annotations

import threading

import openai
import pytest

from app.store import db
from app.store.counters import RedisCounters
from app.store.limits import Refused
from tests import fakebackend as fb
from tests.integration.helpers import (
    MODEL,
    assert_nothing_stored,
    assert_openai_error,
    closed_port,
    create,
)
from tests.integration.tenancy import KEYS_MODE, AdminClient, key_sdk

REDIS_URL = "redis://127.0.0.1:6379/0"
PRICES = {
    "prices": [
        {
            "model": MODEL,
            "input_micros_per_million": 1_000_000,
            "output_micros_per_million": 2_000_000,
            "max_output_tokens": 100,
        }
    ]
}


@pytest.fixture(scope="module")
def redis_url() -> str:
    if not RedisCounters(REDIS_URL).ping():
        pytest.skip(f"no Redis at {REDIS_URL}")
    return REDIS_URL


@pytest.fixture
def keyed(make_app, redis_url):
    app = make_app(**KEYS_MODE, redis_url=redis_url)
    return app, AdminClient(app)


def rate_rows() -> tuple[int, int]:
    with db.connection_context():
        windows = db.execute_sql("SELECT count(*) FROM rate_windows").fetchone()[0]
        slots = db.execute_sql("SELECT count(*) FROM key_inflight").fetchone()[0]
    return windows, slots


def test_requests_per_minute_are_counted_in_redis(keyed, backend):
    app, admin = keyed
    sdk = key_sdk(app, admin.key("ci", rpm_limit=2))
    first = create(sdk, input="one")
    assert first.headers["x-ratelimit-remaining-requests"] == "1"
    create(sdk, input="two")
    with pytest.raises(openai.RateLimitError) as caught:
        sdk.responses.create(model=MODEL, input="three")
    error = assert_openai_error(caught.value, 429)
    assert (error["type"], error["code"]) == ("requests", "rate_limit_exceeded")
    assert caught.value.response.headers["x-ratelimit-remaining-requests"] == "0"
    assert 1 <= int(caught.value.response.headers["retry-after"]) <= 60
    assert len(backend.requests) == 2
    assert rate_rows() == (0, 0)  # nothing of it in the database
    assert len(admin.ok("GET", "/ledger")["data"]) == 2  # the ledger still is


def test_a_stream_holds_its_slot_in_redis_until_it_ends(keyed, backend):
    app, admin = keyed
    sdk = key_sdk(app, admin.key("ci", max_parallel_requests=1))
    backend.enqueue(fb.text("a long answer " * 20))
    held = sdk.responses.create(model=MODEL, input="first", stream=True)
    next(iter(held))
    with pytest.raises(openai.RateLimitError) as caught:
        sdk.responses.create(model=MODEL, input="second")
    assert "in flight" in assert_openai_error(caught.value, 429)["message"]
    for _ in held:
        pass
    assert create(sdk, input="third").body["status"] == "completed"


def test_the_minutes_tokens_are_corrected_to_what_was_used(keyed, backend):
    app, admin = keyed
    sdk = key_sdk(app, admin.key("ci", tpm_limit=10_000))
    usage = {"prompt_tokens": 40, "completion_tokens": 60, "total_tokens": 100}
    backend.enqueue(fb.text("ok", usage=usage))
    create(sdk, input="first", max_output_tokens=500)  # reserves its estimate and 500
    after = create(sdk, input="second", max_output_tokens=500)
    # The second one's headers count the first as the 100 tokens it used, not its estimate.
    remaining = int(after.headers["x-ratelimit-remaining-tokens"])
    second_estimate = 10_000 - 100 - remaining
    assert 500 < second_estimate < 700


def test_a_budget_refusal_gives_back_what_redis_took(keyed, backend):
    app, admin = keyed
    admin.ok("PUT", "/prices", PRICES)
    key = admin.key("ci", rpm_limit=5, max_parallel_requests=1, max_budget_usd=0.0001)
    sdk = key_sdk(app, key)
    for _ in range(3):  # each estimate (input + 100 output tokens) is over the budget
        with pytest.raises(openai.RateLimitError) as caught:
            sdk.responses.create(model=MODEL, input="too dear")
        assert assert_openai_error(caught.value, 429)["code"] == "budget_exceeded"
    # Neither the minute nor the slot kept anything: a cheap key under the same limits...
    assert backend.requests == []
    counters = RedisCounters(REDIS_URL)
    counted = counters.take(key["id"], "probe", rpm=5, tpm=None, max_parallel=1, tokens=1, ttl=60)
    assert counted.window.requests == 1  # ...counts this one as its first of the minute
    counters.give_back(key["id"], counted, tokens_used=None)


def test_concurrent_requests_admit_exactly_what_the_limit_allows(redis_url):
    counters = RedisCounters(redis_url)
    key_id = f"vk_race_{threading.get_ident()}_{id(counters)}"
    start = threading.Barrier(24)
    admitted: list[str] = []
    refused: list[str] = []

    def one(n: int) -> None:
        start.wait()
        try:
            counters.take(key_id, f"req_{n}", rpm=7, tpm=None, max_parallel=None, tokens=1, ttl=60)
            admitted.append(f"req_{n}")
        except Refused as refusal:
            refused.append(refusal.which)

    threads = [threading.Thread(target=one, args=(n,)) for n in range(24)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(admitted) == 7 and refused == ["requests"] * 17


def test_a_slot_whose_request_never_ended_lapses(redis_url):
    counters = RedisCounters(redis_url)
    key_id = f"vk_lapse_{id(counters)}"
    counters.take(key_id, "lost", rpm=None, tpm=None, max_parallel=1, tokens=1, ttl=1, now=1000.0)
    with pytest.raises(Refused) as caught:
        counters.take(
            key_id, "next", rpm=None, tpm=None, max_parallel=1, tokens=1, ttl=1, now=1000.5
        )
    assert caught.value.which == "parallel"
    # Its hold lapsed (a worker killed mid-request): the slot is free again.
    counters.take(key_id, "next", rpm=None, tpm=None, max_parallel=1, tokens=1, ttl=1, now=1001.5)


def test_redis_unreachable_refuses_before_anything_is_sent(make_app, backend):
    app = make_app(**KEYS_MODE, redis_url=f"redis://127.0.0.1:{closed_port()}/0")
    admin = AdminClient(app)
    sdk = key_sdk(app, admin.key("ci", rpm_limit=10))
    with pytest.raises(openai.InternalServerError) as caught:
        sdk.responses.create(model=MODEL, input="hello")
    error = assert_openai_error(caught.value, 503)
    assert "rate-limit store (Redis)" in error["message"]
    assert backend.requests == []
    assert admin.ok("GET", "/ledger")["data"] == []
    assert_nothing_stored(app)
    # A key without rate limits does not need Redis at all.
    assert create(key_sdk(app, admin.key("free")), input="hi").body["status"] == "completed"


@pytest.mark.parametrize("url", ["http://127.0.0.1:6379", "127.0.0.1:6379"])
def test_a_redis_url_that_is_not_one_is_refused_at_start(make_app, url):
    from app.config import ConfigError

    with pytest.raises(ConfigError) as caught:
        make_app(**KEYS_MODE, redis_url=url)
    assert "redis_url" in str(caught.value)
