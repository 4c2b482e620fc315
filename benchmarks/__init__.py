"""Benchmark helpers: messy-answer generator (:mod:`benchmarks.messy`) and survey-style test data."""
