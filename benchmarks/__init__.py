"""Reproducible speed, memory and quality benchmarks, run by hand (make bench)."""
