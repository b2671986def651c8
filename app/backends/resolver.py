"""Name resolution for the workers' connections under gevent.

gevent's default resolver runs every `getaddrinfo` in its thread pool, also
for an address that needs no lookup (`127.0.0.1`, `10.0.0.5`, `::1`). Each
new backend connection then hands work to a real thread and back, and that
thread contends with the worker for the GIL: with thousands of streams
opening at once, their first bytes waited several times longer than with
numeric addresses answered in place (docs/BENCHMARKS.md has the figures).
This resolver answers numeric addresses at once, without any lookup, and leaves
names to gevent's thread pool as before. gunicorn.conf.py selects it
through `GEVENT_RESOLVER` unless the operator chose another.
"""

from __future__ import annotations

import _socket
import ipaddress
from typing import Any

from gevent.resolver.thread import Resolver as ThreadPoolResolver

__all__ = ["Resolver"]


class Resolver(ThreadPoolResolver):
    """gevent's thread-pool resolver, without the thread pool for numeric addresses."""

    def getaddrinfo(self, host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if _is_numeric(host):
            return _socket.getaddrinfo(host, port, *args, **kwargs)
        return super().getaddrinfo(host, port, *args, **kwargs)


def _is_numeric(host: Any) -> bool:
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    if not isinstance(host, str):
        return False
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
