"""The processes a benchmark runs: fast backend, floor app, gateway; their CPU and memory.

Each runs on a free loopback port with its output in the run's directory.
The gunicorn ones use the project's gunicorn.conf.py, 2 gevent workers,
LOG_LEVEL=warning and the access log sent to /dev/null (still formatted, as
an operator who keeps it would pay for it).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
BENCH_AUTHORIZATION = "Bearer sk-bench-0000"  # the key every setup call sends
WORKERS = 2
START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024
# What urllib3 logs when a pool to the backend has no connection to spare.
POOL_FULL_WARNING = "Connection pool is full"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def raise_open_files_limit() -> int:
    """Raise the soft open-file limit to the hard one (children inherit it)."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def http_call(port: int, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
    """One JSON request on a fresh connection; return (status, parsed body)."""
    connection = http.client.HTTPConnection(HOST, port, timeout=60)
    try:
        payload = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json", "Authorization": BENCH_AUTHORIZATION}
        connection.request(method, path, body=payload, headers=headers)
        response = connection.getresponse()
        data = response.read()
        is_json = "json" in response.getheader("Content-Type", "")
        return response.status, (json.loads(data) if is_json and data else {})
    finally:
        connection.close()


@dataclass
class Service:
    """A started process (a gunicorn master and its workers, or a plain server)."""

    name: str
    port: int
    process: subprocess.Popen
    log_path: Path
    ready_path: str
    env: dict[str, str] = field(default_factory=dict)

    @property
    def base(self) -> str:
        return f"http://{HOST}:{self.port}"

    def children(self) -> list[int]:
        """The pids of this process's children (gunicorn workers)."""
        pid = self.process.pid
        with contextlib.suppress(OSError):
            return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
        return []

    def pids(self) -> list[int]:
        return [self.process.pid, *self.children()]

    def workers_rss_kb(self) -> int:
        """Resident memory of the workers added up (the process itself if it has none)."""
        return sum(_rss_kb(pid) for pid in (self.children() or [self.process.pid]))

    def cpu_seconds(self) -> float:
        """CPU time used so far by the process and its workers."""
        return sum(_cpu_seconds(pid) for pid in self.pids())

    def worker_cpu_seconds(self) -> list[float]:
        """CPU time used so far by each worker (shows how evenly they share the load)."""
        return [_cpu_seconds(pid) for pid in self.children()]

    def wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited at start; see {self.log_path}")
            with contextlib.suppress(OSError, http.client.HTTPException):
                status, _ = http_call(self.port, "GET", self.ready_path)
                if status < 500 and len(self.children()) >= self.expected_children():
                    return
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} did not start in {START_TIMEOUT:g}s; see {self.log_path}")

    def expected_children(self) -> int:
        return WORKERS if "gunicorn" in self.process.args else 0

    def log_lines(self, needle: str) -> int:
        """How many lines of this service's output contain `needle`."""
        with open(self.log_path, errors="replace") as handle:
            return sum(needle in line for line in handle)

    def error_lines(self, limit: int = 20) -> list[str]:
        """The first lines of this service's output logged at ERROR (tracebacks follow them)."""
        with open(self.log_path, errors="replace") as handle:
            return [line.rstrip() for line in handle if _is_error(line)][:limit]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _is_error(line: str) -> bool:
    return " ERROR " in line or "[ERROR]" in line  # the gateway's format, gunicorn's


def _rss_kb(pid: int) -> int:
    with contextlib.suppress(OSError):
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_KB
    return 0


def _cpu_seconds(pid: int) -> float:
    with contextlib.suppress(OSError):
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime
    return 0.0


def _start(
    name: str,
    args: list[str],
    workdir: Path,
    env: dict[str, str],
    ready_path: str,
    root: Path = ROOT,
) -> Service:
    port = int(env.pop("PORT"))
    log_path = workdir / f"{name}.log"
    full_env = {**os.environ, **env}
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            args, cwd=root, env=full_env, stdout=log, stderr=subprocess.STDOUT
        )
    service = Service(name, port, process, log_path, ready_path, env)
    try:
        service.wait_ready()
    except BaseException:
        service.stop()
        raise
    return service


def start_backend(workdir: Path, server: str = "asyncio", name: str = "backend") -> Service:
    port = free_port()
    args = [sys.executable, "-m", "bench.fast_backend", "--port", str(port), "--server", server]
    return _start(name, args, workdir, {"PORT": str(port)}, "/stats")


def start_gunicorn(
    name: str,
    app: str,
    workdir: Path,
    backend: Service,
    extra_env: dict[str, str] | None = None,
    root: Path = ROOT,
) -> Service:
    """Start `app` under gunicorn.conf.py with 2 gevent workers, quiet logs.

    `root` is the source tree it runs from (its `app` package comes first on
    the path): another checkout's, to measure two versions side by side.
    """
    port = free_port()
    metrics_dir = workdir / f"metrics-{name}"
    metrics_dir.mkdir(exist_ok=True)
    env = {
        "PORT": str(port),
        "GUNICORN_CMD_ARGS": f"--workers {WORKERS} --bind {HOST}:{port}",
        "OPENAI_API_ENDPOINT": f"{backend.base}/v1",
        "SESSION_STORE_DSN": str(workdir / f"{name}.db"),
        "LOG_LEVEL": "warning",
        "GATEWAY_ACCESS_LOG": "/dev/null",
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        **(extra_env or {}),
    }
    args = [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", app]
    ready = "/health" if app == "wsgi:app" else "/"
    return _start(name, args, workdir, env, ready, root)


def export_revision(revision: str, workdir: Path) -> Path:
    """Write the project's tree at git `revision` into `workdir`; return its folder."""
    commit = subprocess.run(
        ["git", "rev-parse", "--short", revision],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    tree = workdir / f"tree-{commit}"
    tree.mkdir()
    archive = subprocess.Popen(["git", "archive", commit], cwd=ROOT, stdout=subprocess.PIPE)
    subprocess.run(["tar", "-x", "-C", str(tree)], stdin=archive.stdout, check=True)
    if archive.wait() != 0:
        raise RuntimeError(f"git archive {revision} failed")
    return tree


def backend_stats(backend: Service, reset: bool = False) -> dict:
    return http_call(backend.port, "GET", "/stats?reset" if reset else "/stats")[1]
