"""Benchmarks: each measures one claim and writes its figures as JSON.

:mod:`tocsin.bench.throughput` runs ``tocsin bench throughput``, the reference
pipeline's events/s and batch latency against the per-event baselines in
:mod:`tocsin.bench.baselines`.
"""
