"""Benchmarks: run them from the repository root as modules, e.g. `python -m bench.run --quick`."""
