"""Benchmarks: throughput and latency of the reference pipeline against per-event baselines.

:mod:`tocsin.bench.throughput` runs ``tocsin bench throughput``;
:mod:`tocsin.bench.baselines` holds the per-event microservice and River
HalfSpaceTrees loops it is compared with.
"""
