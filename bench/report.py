"""The report of a run: its title, the machine, the issue's targets, then each section's part.

The sections write their own parts (`bench/sections/`); this module puts
them together, in the sections' order, as report.md, or, for a run of
some sections only, as the JSON of their figures.

python -m bench.report bench/results/quick   # write report.md again from results.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from bench import machine
from bench.markdown import section, table
from bench.sections import SECTIONS, memory, profile, scale, tenancy, throughput


def targets(results: dict) -> list[list[Any]]:
    """The issue's targets, each with the measured value and met/missed."""
    return [
        *throughput.targets(results),
        *scale.targets(results),
        *memory.targets(results),
        *tenancy.targets(results),
    ]


def render(results: dict) -> str:
    """The whole report."""
    parts = [
        f"# Benchmark report ({results['mode']['name']} mode, {results['elapsed_s']:.0f} s)",
        "",
        machine.sentence(results["machine"]),
    ]
    parts += section(
        "Targets (issue 5)", table(["target", "limit", "measured", ""], targets(results))
    )
    for part in SECTIONS.values():
        parts += part.report(results)
    return "\n".join([*parts, ""])


def partial(results: dict, sections: set[str]) -> str:
    """What a run of some sections prints: their figures, and the A/B table if there is one."""
    shown = sections | {"against"}
    figures = json.dumps({key: results[key] for key in results if key in shown}, indent=1)
    if "against" in results and "throughput" in results:
        return figures + "\n" + throughput.against_table(results)
    return figures


def main(argv: list[str] | None = None) -> None:
    """Render a results directory again (profiles summarised afresh from their files)."""
    folder = Path((argv or sys.argv[1:])[0])
    results = json.loads((folder / "results.json").read_text())
    profile.summarize_again(results, folder)
    (folder / "results.json").write_text(json.dumps(results, indent=1))
    (folder / "report.md").write_text(render(results))


if __name__ == "__main__":
    main()
