"""The machine a run measures on, as results.json records it and the report names it."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def describe(open_files_limit: int) -> dict:
    """CPUs, memory, Python, kernel and the open-files limit the services inherit."""
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    memory_kb = int(Path("/proc/meminfo").read_text().split()[1])
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "memory_gb": round(memory_kb / 1024 / 1024, 1),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "open_files_limit": open_files_limit,
    }


def sentence(machine: dict) -> str:
    """The report's line about the machine that `describe` recorded."""
    return (
        f"Machine: {machine['nproc']} CPUs ({machine['cpu']}), {machine['memory_gb']} GB, "
        f"Python {machine['python']}, kernel {machine['kernel']}, "
        f"open files limit {machine['open_files_limit']}."
    )
