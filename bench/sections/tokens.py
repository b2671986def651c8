"""The gateway's own work per streamed token (`bench/per_token.py` measures), and its table."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bench.markdown import section, table
from bench.per_token import per_token

if TYPE_CHECKING:
    from bench.run import Context


def run(context: Context) -> dict:
    """µs of CPU per token with the gateway's JSON and with the `json` module."""
    return {"tokens": per_token()}


def report(results: dict) -> list[str]:
    """Both timings, where the run measured them (results of older runs may not have them)."""
    if "tokens" not in results:
        return []
    figures = results["tokens"]
    timings = table(
        ["JSON", "µs per token"],
        [[name, figures[name]["us_per_token"]] for name in ("gateway", "json module")],
    )
    return section(
        "The gateway's own work per token",
        f"{figures['streams_timed']} streams of {figures['tokens_per_stream']} tokens through "
        "the body decoder, SSE parser, translator and event encoder, in one process.\n\n" + timings,
    )
