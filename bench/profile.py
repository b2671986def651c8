"""Profiling a gateway worker with py-spy, and naming where its time goes.

`record` samples one worker (`py-spy record --format raw`: one collapsed
stack per line with its count; speedscope opens these files too).
`summarize` reads them back: the share of samples that pass through each
cost (inclusive: a sample in `json.dumps` called by peewee counts for both
JSON and the store), and the functions with the most samples of their own.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

SAMPLE_RATE = 250
# Named costs: a sample counts for a cost when one of its frames matches.
COSTS = {
    "request validation (marshmallow, app/protocol/responses/schemas/)": (
        "marshmallow/",
        "protocol/responses/schemas/",
    ),
    "JSON encode/decode (json, compact_json, flask.json)": (
        "json/encoder.py",
        "json/decoder.py",
        "json/__init__",
        "compact_json.py",
    ),
    "store: peewee + sqlite3 (incl. commit)": ("peewee.py", "playhouse/"),
    "sqlite commit": ("commit (peewee.py",),
    "backend call: urllib3 + http.client (requests too, where used)": (
        "requests/",
        "urllib3/",
        "http/client.py",
    ),
    "translation + response building (app/protocol, not schemas)": (
        "app/protocol/chat/",
        "app/protocol/responses/objects.py",
        "app/protocol/responses/events.py",
        "app/protocol/responses/sse.py",
        "app/protocol/ids.py",
        "app/services/response_loop.py",
    ),
    "requests reading proxy/netrc settings from the environment (trust_env)": (
        "merge_environment_settings",
        "get_netrc_auth",
    ),
    "logging (request_completed line, masking filter, access log)": ("logging/", "app/logs.py"),
    "gunicorn access log (glogging)": ("glogging.py",),
    "metrics (prometheus_client)": ("prometheus_client/",),
    "gunicorn HTTP parse + write": ("gunicorn/http/",),
    "stream body reader: socket, framing (app/backends/transport.py, body.py)": (
        "BodyStream.reads",
    ),
    "opener thread: the backend call until its headers (Upstream._open)": ("Upstream._open",),
    "new backend connection per request (connect)": ("_internal_connect", "create_connection"),
    "closing the backend connection (BodyStream.close)": ("BodyStream.close",),
}


def record(pids: list[int], seconds: float, output: Path, idle: bool = False) -> Path | None:
    """Sample every pid for `seconds` at once into `output` (collapsed stacks, all added up).

    None without py-spy. With `idle`, samples where a worker waits count too
    (wall clock, not CPU): that shows a worker frozen inside a C call, e.g.
    sqlite's busy handler, next to the hub waiting for sockets.
    """
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(py_spy).exists():
        return None
    parts = [output.with_suffix(f".{pid}.part") for pid in pids]
    samplers = [
        subprocess.Popen(
            [py_spy, "record", "-p", str(pid), "-d", str(int(seconds)), "-r", str(SAMPLE_RATE)]
            + ["--format", "raw", "-o", str(part), "--nonblocking"]
            + (["--idle"] if idle else []),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for pid, part in zip(pids, parts, strict=True)
    ]
    for sampler in samplers:
        sampler.wait()
    output.write_text("".join(part.read_text() for part in parts if part.exists()))
    for part in parts:
        part.unlink(missing_ok=True)
    return output


def read_stacks(path: Path) -> list[tuple[list[str], int]]:
    stacks = []
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            stacks.append((stack.split(";"), int(count)))
    return stacks


def _function(frame: str) -> str:
    """`name (path:line)` -> `name (path)`."""
    name, _, where = frame.partition(" (")
    return f"{name} ({where.rsplit(':', 1)[0]})" if where else name


def summarize(path: Path, top: int = 15) -> dict:
    """Shares of samples per named cost, and the functions with most own samples."""
    stacks = read_stacks(path)
    total = sum(count for _, count in stacks) or 1
    costs: Counter = Counter()
    own: Counter = Counter()
    inclusive: Counter = Counter()
    for frames, count in stacks:
        for cost, needles in COSTS.items():
            if any(needle in frame for frame in frames for needle in needles):
                costs[cost] += count
        own[_function(frames[-1])] += count
        for function in {_function(frame) for frame in frames}:
            inclusive[function] += count
    share = lambda n: round(100 * n / total, 1)  # noqa: E731
    app_inclusive = [
        (name, share(n))
        for name, n in inclusive.most_common()
        if "(app/" in name or "(responses.py" in name
    ]
    return {
        "samples": total,
        "costs": [(name, share(n)) for name, n in costs.most_common()],
        "own": [(name, share(n)) for name, n in own.most_common(top)],
        "app_inclusive": app_inclusive[:top],
    }
