"""Run the whole benchmark in one command and write the report.

    python -m bench.run --quick        # ~5 minutes
    python -m bench.run                # full: repeats, 10k vs 100k requests (~20 minutes)
    python -m bench.run --smoke        # seconds: only checks that the harness works

Side by side, in one run on this machine: the fast backend alone, the
floor app and the gateway (gunicorn.conf.py, 2 gevent workers) at
concurrency 1, 32 and 256; py-spy profiles of the gateway workers; long
streams held at once (scale); `previous_response_id` chains and
conversations of growing length (growth); memory after many requests;
the store's cost per saved response as it grows (writes); the gateway's
own work per streamed token, without the stack around it (tokens).
The report (Markdown) and every figure (JSON) go to `--out`. Each section
(bench/sections/) measures and writes its part; this module holds the
command line, the modes, and a run: its services and its sections in order.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path

from bench import machine, report
from bench.sections import SECTIONS
from bench.services import (
    ROOT,
    Service,
    export_revision,
    raise_open_files_limit,
    start_backend,
    start_gunicorn,
)
from bench.targets import AGAINST

CONCURRENCIES = (1, 32, 256)


@dataclass(frozen=True)
class Mode:
    """How much of everything a run does."""

    name: str
    concurrencies: tuple[int, ...]
    duration: float  # seconds measured per load point
    warmup: float  # seconds not counted before each point
    repeats: int  # runs per point; the one with the median rps is kept
    scale_streams: tuple[int, ...]
    scale_tokens: int  # tokens per long stream, one every 100-500 ms (fewer, slower, at 500 ms)
    growth_depths: tuple[int, ...]
    growth_requests: int  # requests measured at each depth
    rss_checkpoints: tuple[int, int]  # requests served before each RSS reading
    profile_seconds: float = 0.0
    cross_check: bool = False  # wrk and the gevent backend, for comparison
    write_checkpoints: tuple[int, ...] = (0, 1000)  # stored responses before each timed batch


MODES = {
    "smoke": Mode("smoke", (1, 8), 0.5, 0.2, 1, (20,), 4, (1, 3), 3, (100, 300)),
    "quick": Mode(
        "quick",
        CONCURRENCIES,
        duration=2.5,
        warmup=0.5,
        repeats=3,
        scale_streams=(100, 1000, 5000),
        scale_tokens=150,
        growth_depths=(1, 10, 100, 500),
        growth_requests=20,
        rss_checkpoints=(5_000, 20_000),
        profile_seconds=8,
        cross_check=True,
        write_checkpoints=(0, 50_000),
    ),
    "full": Mode(
        "full",
        CONCURRENCIES,
        duration=8.0,
        warmup=2.0,
        repeats=3,
        scale_streams=(100, 1000, 5000),
        scale_tokens=150,
        growth_depths=(1, 10, 100, 500),
        growth_requests=50,
        rss_checkpoints=(10_000, 100_000),
        profile_seconds=20,
        cross_check=True,
        write_checkpoints=(0, 50_000, 200_000),
    ),
}


@dataclass
class Context:
    """What a run hands each section: its mode, its folders, the services it started."""

    mode: Mode
    out: Path  # report.md, results.json and the profiles
    workdir: Path  # the run's own temporary folder: logs, databases, exported trees
    backend: Service
    floor: Service
    gateway: Service
    against_tree: Path | None  # the project's tree at `--against REV`
    started: list[Service]  # every service the run started, stopped at its end

    @cached_property
    def against_gateway(self) -> Service | None:
        """A gateway from `against_tree` beside this one (None without it), started on first use."""
        if self.against_tree is None:
            return None
        service = start_gunicorn(
            AGAINST, "wsgi:app", self.workdir, self.backend, root=self.against_tree
        )
        self.started.append(service)
        return service


@contextlib.contextmanager
def running(mode: Mode, out: Path, workdir: Path, against: str | None) -> Iterator[Context]:
    """Start the backend, the floor app and the gateway; stop them, and all started later."""
    started: list[Service] = []
    try:
        backend = start_backend(workdir)
        started.append(backend)
        floor = start_gunicorn("floor", "bench.floor_app:app", workdir, backend)
        started.append(floor)
        gateway = start_gunicorn("gateway", "wsgi:app", workdir, backend)
        started.append(gateway)
        tree = export_revision(against, workdir) if against else None
        yield Context(mode, out, workdir, backend, floor, gateway, tree, started)
    finally:
        for service in reversed(started):
            service.stop()


def main(argv: list[str] | None = None) -> None:
    """Run the sections the command line names, in order; write results.json and report.md."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--quick", action="store_const", const="quick", dest="mode")
    group.add_argument("--smoke", action="store_const", const="smoke", dest="mode")
    parser.add_argument("--out", type=Path, help="directory for report.md and results.json")
    parser.add_argument(
        "--only",
        type=lambda text: set(text.split(",")),
        default=set(SECTIONS),
        help=f"comma-separated sections to run ({','.join(SECTIONS)}); the report needs all",
    )
    parser.add_argument(
        "--against",
        metavar="REV",
        help="also run the gateway of git revision REV (an A/B): in the throughput rounds, "
        "and with the largest number of long streams",
    )
    args = parser.parse_args(argv)
    if not args.only <= set(SECTIONS):
        parser.error(f"--only takes some of {','.join(SECTIONS)}")
    mode = MODES[args.mode or "full"]
    out = args.out or ROOT / "bench" / "results" / mode.name
    out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    results: dict = {"mode": asdict(mode), "machine": machine.describe(raise_open_files_limit())}
    with (
        tempfile.TemporaryDirectory(prefix="gateway-bench-") as temp,
        running(mode, out, Path(temp), args.against) as context,
    ):
        if context.against_tree is not None:
            tree = context.against_tree.name.removeprefix("tree-")
            results["against"] = {"revision": args.against, "tree": tree}
        for name, section in SECTIONS.items():
            if name in args.only:
                results.update(section.run(context))
    results["elapsed_s"] = round(time.time() - started, 1)
    if args.only != set(SECTIONS):
        print(report.partial(results, args.only))
        return
    (out / "results.json").write_text(json.dumps(results, indent=1))
    (out / "report.md").write_text(report.render(results))
    print(f"\nreport: {out / 'report.md'} ({results['elapsed_s']:.0f}s)")


if __name__ == "__main__":
    main()
