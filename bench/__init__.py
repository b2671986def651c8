"""Benchmark harness: fake backend, floor app, load generator, runner (docs/BENCHMARKS.md)."""
