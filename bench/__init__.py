"""Benchmarks: `python -m bench.run_all` (see the README's Performance section).

Every figure is a ratio against a baseline measured in the same run, because
the machines these run on are small and shared.
"""
