"""Benchmarks: each measures one claim and writes its figures as JSON.

:mod:`tocsin.bench.throughput` runs ``tocsin bench throughput``, the reference
pipeline's events/s and batch latency against the per-event baselines in
:mod:`tocsin.bench.baselines`; :mod:`tocsin.bench.series` runs ``tocsin bench series``,
readings/s and bytes per series of per-series models (``kind: series``) against River.
"""
