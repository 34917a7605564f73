"""Benchmarks: ``python -m benchmarks [NAME ...] [--quick]`` -> ``benchmarks/results/*.json``."""
