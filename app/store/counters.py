"""A key's requests and tokens a minute and its requests in flight, counted in Redis.

With `GATEWAY_REDIS_URL` set, the rate limits (RPM, TPM, parallel
requests) of every gateway on that Redis are counted there instead of in
the database: one Lua script per admission checks every limit and, only
if all allow it, takes its share - atomically, so N concurrent requests
across workers and nodes admit exactly what the limits allow. A key with
rate limits and no budget then makes no write transaction to admit.
Budgets, reservations and the ledger stay in the database.

- A minute is a hash `gw:rw:<key id>:<minute start>` (`r` requests, `t`
  tokens), expiring two minutes after it starts.
- Requests in flight are a sorted set `gw:slots:<key id>` of request ids
  scored by when their hold lapses: a request that never ends (a worker
  killed) stops counting then, as the sweep releases a database hold.

Redis unreachable at admission refuses the request (503) before anything
is sent: limits are never skipped silently.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from app.errors import StoreError
from app.store.limits import (
    KEEP_WINDOWS_SECONDS,
    Refused,
    WindowUse,
    minute_caps,
    minute_start,
)

SOCKET_SECONDS = 2.0
REFUSALS = {1: "requests", 2: "tokens", 3: "parallel"}

# KEYS: the minute's hash, the key's slots. ARGV: requests cap, tokens cap, tokens,
# count the minute (1/0), take a slot (1/0), slots cap, now, request id, slot lapses at,
# minute's lifetime, slots' lifetime.
TAKE = """
local requests = tonumber(redis.call('HGET', KEYS[1], 'r') or '0')
local tokens = tonumber(redis.call('HGET', KEYS[1], 't') or '0')
local minute = ARGV[4] == '1'
if minute then
  if requests + 1 > tonumber(ARGV[1]) then return {1, requests, tokens} end
  if tokens + tonumber(ARGV[3]) > tonumber(ARGV[2]) then return {2, requests, tokens} end
end
if ARGV[5] == '1' then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[7])
  if redis.call('ZCARD', KEYS[2]) + 1 > tonumber(ARGV[6]) then return {3, requests, tokens} end
  redis.call('ZADD', KEYS[2], ARGV[9], ARGV[8])
  redis.call('EXPIRE', KEYS[2], ARGV[11])
end
if minute then
  requests = redis.call('HINCRBY', KEYS[1], 'r', 1)
  tokens = redis.call('HINCRBY', KEYS[1], 't', ARGV[3])
  redis.call('EXPIRE', KEYS[1], ARGV[10])
end
return {0, requests, tokens}
"""
# KEYS: the minute's hash, the key's slots. ARGV: requests and tokens to add (integers:
# a refusal's share back, or a settled request's correction), request id.
GIVE_BACK = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  if ARGV[1] ~= '0' then redis.call('HINCRBY', KEYS[1], 'r', ARGV[1]) end
  if ARGV[2] ~= '0' then redis.call('HINCRBY', KEYS[1], 't', ARGV[2]) end
end
redis.call('ZREM', KEYS[2], ARGV[3])
return 1
"""


@dataclass(frozen=True)
class Counted:
    """What an admitted request holds in Redis until it ends."""

    request_id: str
    window: WindowUse | None
    tokens: int
    slot: bool


class RedisCounters:
    """Rate limits counted in Redis (see the module's text)."""

    def __init__(self, url: str) -> None:
        import redis  # only where Redis is configured

        self.client = redis.Redis.from_url(
            url, socket_timeout=SOCKET_SECONDS, socket_connect_timeout=SOCKET_SECONDS
        )
        self._take = self.client.register_script(TAKE)
        self._give_back = self.client.register_script(GIVE_BACK)
        self.errors: tuple[type[Exception], ...] = (redis.RedisError, OSError)

    def take(
        self,
        key_id: str,
        request_id: str,
        *,
        rpm: int | None,
        tpm: int | None,
        max_parallel: int | None,
        tokens: int,
        ttl: int,
        now: float | None = None,
    ) -> Counted:
        """Take the request's share of its key's minute and a slot, or raise `Refused`."""
        now = time.time() if now is None else now
        start = minute_start(now)
        minute = rpm is not None or tpm is not None
        requests_cap, tokens_cap = minute_caps(start, rpm, tpm, tokens) if minute else (0, 0)
        keys = (self._minute(key_id, start), self._slots(key_id))
        arguments = (
            requests_cap,
            tokens_cap,
            tokens,
            int(minute),
            int(max_parallel is not None),
            max_parallel or 0,
            now,
            request_id,
            now + ttl,
            KEEP_WINDOWS_SECONDS,
            ttl,
        )
        refusal, requests, tokens_used = self._call(self._take, keys, arguments, "admit")
        window = WindowUse(start, int(requests), int(tokens_used), rpm, tpm) if minute else None
        if refusal:
            raise Refused(REFUSALS[int(refusal)], window)
        return Counted(request_id, window, tokens, max_parallel is not None)

    def give_back(self, key_id: str, counted: Counted, tokens_used: int | None = None) -> None:
        """End a request's hold: its slot, and (refused) its share of the minute or (settled)
        the difference between the tokens it reserved and those it used."""
        if counted.window is None and not counted.slot:
            return
        start = counted.window.start if counted.window else 0
        if tokens_used is None:  # refused after the minute was taken: all of it back
            requests_back, tokens_back = (1, counted.tokens) if counted.window else (0, 0)
        else:
            requests_back = 0
            tokens_back = counted.tokens - tokens_used if counted.window else 0
        keys = (self._minute(key_id, start), self._slots(key_id))
        arguments = (-requests_back, -tokens_back, counted.request_id)
        self._call(self._give_back, keys, arguments, "release")

    def ping(self) -> bool:
        try:
            return bool(self.client.ping())
        except self.errors:
            return False

    def _call(self, script: Any, keys: tuple[str, ...], arguments: tuple, what: str) -> Any:
        try:
            return script(keys=keys, args=arguments)
        except self.errors as exc:
            raise StoreError(
                f"The rate-limit store (Redis) could not {what}: {exc.__class__.__name__}: "
                f"{str(exc)[:200]}"
            ) from exc

    @staticmethod
    def _minute(key_id: str, start: int) -> str:
        return f"gw:rw:{key_id}:{start}"

    @staticmethod
    def _slots(key_id: str) -> str:
        return f"gw:slots:{key_id}"
