"""gunicorn's gevent worker, whose graceful stop does not wait on idle clients.

On a graceful stop (SIGTERM, a reload, `max_requests`) gunicorn's gevent
worker stops accepting and waits until every connection's handler has
returned, for up to `graceful_timeout`. A client holding a keep-alive
connection open between requests (the openai SDK, nginx's upstream pool)
keeps its handler waiting for a next request that never comes, so a worker
with no stream left in flight still waited the whole 60 s. This worker
closes those idle connections as soon as it starts to stop, and every
other connection as soon as its request in flight has been answered.

gunicorn.conf.py selects it; gunicorn's master imports this module, so it
imports nothing but gunicorn's own gevent worker.
"""

from __future__ import annotations

import contextlib
import socket
from typing import Any

import gevent
from gunicorn.workers.ggevent import GeventWorker

STOP_CHECK_SECONDS = 0.2

__all__ = ["GatewayWorker"]


class GatewayWorker(GeventWorker):
    """A gevent worker that knows which connections wait for a request."""

    def init_process(self) -> None:
        self.waiting: set[socket.socket] = set()  # connections between two requests
        super().init_process()

    def run(self) -> None:
        gevent.spawn(self._close_waiting_once_stopping)
        super().run()

    def handle(self, listener: Any, client: socket.socket, addr: Any) -> None:
        self.waiting.add(client)
        try:
            super().handle(listener, client, addr)
        finally:
            self.waiting.discard(client)

    def handle_request(self, listener_name: Any, req: Any, sock: socket.socket, addr: Any) -> None:
        self.waiting.discard(sock)
        super().handle_request(listener_name, req, sock, addr)
        if not self.alive:
            raise StopIteration  # stopping: gunicorn closes the connection on this
        self.waiting.add(sock)

    def _close_waiting_once_stopping(self) -> None:
        while self.alive:
            gevent.sleep(STOP_CHECK_SECONDS)
        for sock in list(self.waiting):
            # The handler blocked reading the next request sees the end at once.
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
