"""The backend pools' connections: calls that can be cut, requests sent in one write.

A call blocked inside urllib3 (the backend is still prefilling) can
only be ended by shutting down its socket, and only the connection knows
which socket that is. So the backend's pools make connections that hand
their socket to the `CallHandle` of the thread making the call as soon as
they have one: once connected (a new connection), and again just before
they wait for the headers (a pooled one). `cut()` from any other greenlet
then shuts that socket down, and the backend sees the client go at once;
a cut while the connection is still being made takes effect as it is made.

The same connections send a request's head and body in one write (urllib3
writes them apart): one system call and one wake-up of the backend fewer
per request (docs/BENCHMARKS.md has what it saved).
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


class CallCut(Exception):
    """A call was cut by the gateway itself (its client left, or a cancel): nobody is told,
    and it is not the backend's failure."""


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
    """Hands the socket to the call's handle before the wait for the headers.

    It also holds a request's head until its body is written, and sends both
    at once: apart, they cost a second system call and can wake the backend
    twice for one request.
    """

    _holding = False
    _head: bytes | None = None

    def endheaders(self, *args: Any, **kwargs: Any) -> None:
        self._holding = True  # the head is the first write from here
        try:
            super().endheaders(*args, **kwargs)  # type: ignore[misc]
        finally:
            self._holding = False

    def send(self, data: Any) -> None:
        if self._head is not None:
            head, self._head = self._head, None
            if isinstance(data, bytes):
                data = head + data
            else:
                super().send(head)  # type: ignore[misc]
        elif self._holding:
            self._head = data
            return
        super().send(data)  # type: ignore[misc]

    def connect(self) -> None:
        super().connect()  # type: ignore[misc]
        self._hand_over_socket()

    def getresponse(self, *args: Any, **kwargs: Any) -> Any:
        if self._head is not None:  # a request without a body
            head, self._head = self._head, None
            super().send(head)  # type: ignore[misc]
        self._hand_over_socket()
        return super().getresponse(*args, **kwargs)  # type: ignore[misc]

    def _hand_over_socket(self) -> None:
        handle = getattr(_current, "handle", None)
        if handle is not None:
            handle.attach(self.sock)  # type: ignore[attr-defined]


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
