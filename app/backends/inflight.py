"""Cutting a backend call that is still waiting for its response headers.

A call blocked inside urllib3 (the backend is still prefilling) can
only be ended by shutting down its socket, and only the connection knows
which socket that is. So the backend's pools make connections that, just
before they wait for the headers, hand their socket to the `CallHandle`
of the thread making the call. `cut()` from any other greenlet then shuts
that socket down, and the backend sees the client go at once.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from typing import Any

from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

_current = threading.local()  # greenlet-local under gevent


class CallHandle:
    """The socket of one call in flight, and whether the call was cut."""

    def __init__(self) -> None:
        self.sock: socket.socket | None = None
        self.was_cut = False
        self.lock = threading.Lock()

    def attach(self, sock: socket.socket | None) -> None:
        with self.lock:
            self.sock = sock
            if self.was_cut:
                _shutdown(sock)

    def cut(self) -> None:
        """Shut down the call's socket now, or as soon as it has one."""
        with self.lock:
            self.was_cut = True
            _shutdown(self.sock)


@contextlib.contextmanager
def tracked(handle: CallHandle | None) -> Iterator[None]:
    """Let the calls this thread makes inside the block be cut through `handle`."""
    _current.handle = handle
    try:
        yield
    finally:
        _current.handle = None


class _Tracking:
    def getresponse(self, *args: Any, **kwargs: Any) -> Any:
        handle = getattr(_current, "handle", None)
        if handle is not None:
            handle.attach(self.sock)  # type: ignore[attr-defined]
        return super().getresponse(*args, **kwargs)  # type: ignore[misc]


class _TrackedHTTPConnection(_Tracking, HTTPConnection):
    pass


class _TrackedHTTPSConnection(_Tracking, HTTPSConnection):
    pass


class _TrackedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _TrackedHTTPConnection


class _TrackedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _TrackedHTTPSConnection


TRACKED_POOLS = {"http": _TrackedHTTPPool, "https": _TrackedHTTPSPool}


def _shutdown(sock: socket.socket | None) -> None:
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
