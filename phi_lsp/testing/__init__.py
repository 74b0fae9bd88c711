"""Helpers for tests and benchmarks; no shipped code path imports this package."""
