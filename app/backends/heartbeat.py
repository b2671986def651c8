"""Waiting on a slow source without going silent: a reader thread and a queue.

Under gunicorn's gevent worker the thread is a greenlet; under the Flask
dev server it is a real thread. Either way the consumer wakes up every
`interval` seconds with nothing to read, so the stream can send a
keep-alive that clients count (they ignore SSE comments).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import Any

QUEUE_SIZE = 64
PUT_TIMEOUT = 0.5
_END = object()


class Heartbeat:
    """Iterate `source` in a reader thread; yields `None` after each silent `interval`."""

    def __init__(self, source: Iterable[Any], interval: float) -> None:
        self.source = source
        self.interval = interval
        self.queue: queue.Queue[tuple[Any, BaseException | None]] = queue.Queue(QUEUE_SIZE)
        self.stopped = threading.Event()
        self.reader = threading.Thread(target=self._read, name="upstream-reader", daemon=True)

    def __iter__(self) -> Iterator[Any]:
        self.reader.start()
        try:
            while True:
                try:
                    item, error = self.queue.get(timeout=self.interval)
                except queue.Empty:
                    yield None
                    continue
                if error is not None:
                    raise error
                if item is _END:
                    return
                yield item
        finally:
            self.stopped.set()

    def _read(self) -> None:
        try:
            for item in self.source:
                if not self._put((item, None)):
                    return
            self._put((_END, None))
        except BaseException as exc:  # handed to the consumer, raised there
            self._put((None, exc))

    def _put(self, entry: tuple[Any, BaseException | None]) -> bool:
        """Queue `entry` unless the consumer has gone; tell whether it was queued."""
        while not self.stopped.is_set():
            try:
                self.queue.put(entry, timeout=PUT_TIMEOUT)
                return True
            except queue.Full:
                continue
        return False
