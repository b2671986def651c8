"""The sections of a run, in the order they run and appear in the report.

Each module measures one thing and writes its part of the report:

- `run(context) -> dict`: measures with what `bench.run.Context` holds (the
  mode, the folders, the running services) and returns its keys of
  results.json (`{}` where the mode leaves it out);
- `report(results) -> list[str]`: its lines of report.md, from the whole of
  results.json (`[]` where its keys are missing, for the optional ones).

Sections that decide some of the issue's targets also have
`targets(results)`: rows of the report's targets table.
"""

from __future__ import annotations

from bench.sections import growth, memory, profile, scale, tenancy, throughput, tokens, writes

SECTIONS = {
    module.__name__.rpartition(".")[2]: module
    for module in (throughput, profile, growth, memory, scale, writes, tokens, tenancy)
}
