"""Stopping the programs the tests start."""

from __future__ import annotations

import signal
import subprocess


def terminate(process: subprocess.Popen, timeout: float) -> None:
    """SIGTERM `process` and wait `timeout` seconds for it, then SIGKILL it."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
