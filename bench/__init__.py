"""Reproducible benchmarks, each against a baseline measured in the same run."""
