"""TLS for end-to-end tests: throwaway certificates, an https fake backend, clean starts.

The gateway must reach https backends from every shipped entry point. What
breaks it is an import of ssl-using modules (urllib3, requests) before
gevent patches the workers: gevent then warns (`MonkeyPatchWarning`) and
every https call fails with a `RecursionError`. `assert_clean_start` looks
for both in a process's log.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import fakebackend as fb

OPENSSL = shutil.which("openssl")
# What a worker logs when ssl was imported before gevent patched it.
UNSAFE_START_SIGNS = ("MonkeyPatchWarning", "RecursionError")


def self_signed_certificate(directory: Path) -> tuple[Path, Path] | None:
    """A throwaway certificate for 127.0.0.1, or None without openssl."""
    if OPENSSL is None:
        return None
    cert, key = directory / "loopback.crt", directory / "loopback.key"
    subprocess.run(
        [OPENSSL, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"]
        + ["-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"]
        + ["-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    return cert, key


@pytest.fixture
def https_backend(tmp_path: Path) -> Iterator[tuple[fb.FakeBackend, Path]]:
    """A fake backend serving HTTPS on loopback, and the certificate to trust it by."""
    made = self_signed_certificate(tmp_path)
    if made is None:
        pytest.skip("openssl is not installed (scripts/install-test-tools installs it)")
    cert, key = made
    server = fb.FakeBackend(models=["fake-model"], tls=(str(cert), str(key))).start()
    yield server, cert
    server.stop()


def assert_clean_start(log: str) -> None:
    """Fail if the log shows ssl imported before gevent patched the worker."""
    for sign in UNSAFE_START_SIGNS:
        assert sign not in log, f"{sign} in the gateway's log:\n{log}"
