"""Benchmarks: ``python -m benchmarks [NAME ...] [--quick]`` writes JSON to ``benchmarks/results/``."""
