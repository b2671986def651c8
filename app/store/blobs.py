"""Uploaded files' bytes on disk, named by file id; their metadata is in the database.

`<base_dir>/<last two characters of the id>/<id>` holds a file's bytes
(two characters of the id's random part spread files over 256
directories). An upload is written to `<base_dir>/.uploads/<random>.part`
as it arrives, a chunk at a time, counted against the cap; only whole, it
is synced and renamed into place, so a file is either all there or not
there. The order around the database keeps what is stored whole:

- create: bytes renamed into place, then the row committed (a failed
  commit removes the bytes);
- delete: the row deleted and committed, then the bytes removed.

A worker killed between the two steps leaves bytes no row names; the
sweep removes those (and uploads abandoned midway) once they are an hour
old (`orphans`). Every worker of every node must share `base_dir`.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import secrets
import time
from collections.abc import Callable, Iterator
from typing import BinaryIO

from app.errors import GatewayError, PayloadTooLarge, StoreError, StoreFull

log = logging.getLogger(__name__)

UPLOADS = ".uploads"
PART_SUFFIX = ".part"
ORPHAN_AGE = 3600.0  # bytes without a row, or a part left behind, this old are removed
FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


class Upload:
    """One upload being written: a part file that refuses to grow past the cap."""

    def __init__(self, path: str, max_bytes: int) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.size = 0
        self._file: BinaryIO = open(path, "xb")  # noqa: SIM115 - closed by `close` or `discard`

    def write(self, data: bytes) -> int:
        self.size += len(data)
        if self.size > self.max_bytes:
            raise PayloadTooLarge(
                f"The file is larger than this gateway accepts ({self.max_bytes} bytes).",
                param="file",
            )
        try:
            return self._file.write(data)
        except OSError as exc:
            raise disk_error(exc) from exc

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._file.seek(offset, whence)  # werkzeug rewinds a part when it ends

    def close(self) -> None:
        """Flush and sync the bytes (a failure here is a full disk too)."""
        try:
            self._file.flush()
            os.fsync(self._file.fileno())
        except OSError as exc:
            raise disk_error(exc) from exc
        finally:
            self._file.close()

    def discard(self) -> None:
        self._file.close()
        _remove(self.path)


class BlobStore:
    """The directory of uploaded files' bytes."""

    def __init__(self, base_dir: str, max_bytes: int) -> None:
        self.base_dir = os.path.abspath(base_dir)
        self.max_bytes = max_bytes
        self.uploads = os.path.join(self.base_dir, UPLOADS)

    def receive(self) -> Upload:
        """A new part file to write an upload into."""
        try:
            os.makedirs(self.uploads, exist_ok=True)
            return Upload(
                os.path.join(self.uploads, secrets.token_hex(16) + PART_SUFFIX), self.max_bytes
            )
        except OSError as exc:
            raise disk_error(exc) from exc

    def keep(self, upload: Upload, file_id: str) -> None:
        """Put a whole upload in place as `file_id`'s bytes."""
        upload.close()
        path = self.path(file_id)
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            os.rename(upload.path, path)
        except OSError as exc:
            _remove(upload.path)
            raise disk_error(exc) from exc

    def path(self, file_id: str) -> str:
        if not file_id or "/" in file_id or "\\" in file_id or file_id.startswith("."):
            raise ValueError(f"not a file id: {file_id!r}")
        return os.path.join(self.base_dir, file_id[-2:], file_id)

    def existing(self, file_id: str) -> str:
        """The path of `file_id`'s bytes, which must be there (a row without them is lost data)."""
        path = self.path(file_id)
        if not os.path.isfile(path):
            log.error("file %s has a row but no bytes at %s", file_id, path)
            raise GatewayError(
                "The file's bytes are missing from the gateway's file store.",
                code="file_content_missing",
            )
        return path

    def read(self, file_id: str) -> bytes:
        """`file_id`'s bytes, whole (for files given as input: at most a few MB)."""
        with open(self.existing(file_id), "rb") as handle:
            return handle.read()

    def remove(self, file_id: str) -> None:
        _remove(self.path(file_id))

    def orphans(
        self, known: Callable[[list[str]], set[str]], older_than: float = ORPHAN_AGE
    ) -> int:
        """Remove bytes that no row names and parts abandoned midway, `older_than` seconds
        old or more (younger ones may be an upload still committing); return how many."""
        cutoff = time.time() - older_than
        removed = 0
        for directory, names in self._listing():
            old = [name for name in names if _mtime(os.path.join(directory, name)) < cutoff]
            if directory == self.uploads or not old:
                stray = old
            else:
                named = known(old)
                stray = [name for name in old if name not in named]
            for name in stray:
                _remove(os.path.join(directory, name))
                removed += 1
        return removed

    def _listing(self) -> Iterator[tuple[str, list[str]]]:
        try:
            entries = sorted(os.listdir(self.base_dir))
        except FileNotFoundError:
            return
        for entry in entries:
            directory = os.path.join(self.base_dir, entry)
            if os.path.isdir(directory):
                yield directory, sorted(os.listdir(directory))


def disk_error(exc: OSError) -> StoreError:
    """The error a client sees when the files' disk refused a write."""
    if exc.errno in FULL_ERRNOS:
        return StoreFull(
            "The file store is full: no file can be uploaded until space is freed.",
            code="insufficient_storage",
        )
    return StoreError(f"The file store could not write the file ({exc.strerror}).")


def _mtime(path: str) -> float:
    try:
        return os.path.getmtime(path)
    except FileNotFoundError:
        return time.time()


def _remove(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.remove(path)
