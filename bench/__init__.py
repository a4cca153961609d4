"""Benchmarks: `make bench` (or `python -m bench [name ...]`) prints the numbers."""
