"""Stopping the programs the tests start, and looking at them while they run."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path


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


def proc_status(pid: int) -> dict[str, str]:
    """`/proc/<pid>/status` as a mapping (`VmRSS`, `PPid`, `Uid`, …)."""
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return dict(line.split(":\t", 1) for line in lines if ":\t" in line)


def worker_pids(master: int, expected: int, timeout: float) -> list[int]:
    """The master's child processes, once there are `expected` of them (or `timeout` passed)."""
    deadline = time.monotonic() + timeout
    while True:
        children = []
        for entry in Path("/proc").iterdir():
            try:
                if entry.name.isdigit() and int(proc_status(int(entry.name))["PPid"]) == master:
                    children.append(int(entry.name))
            except (FileNotFoundError, ProcessLookupError):
                continue  # exited while listed
        if len(children) >= expected or time.monotonic() > deadline:
            return children
        time.sleep(0.2)
