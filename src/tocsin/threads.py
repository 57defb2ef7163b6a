"""Process-wide helper threads for work that runs without the GIL (numba ``nogil`` kernels).

Why: one Python thread keeps one core busy at most; a compiled kernel that releases the GIL can run on the
other cores beside it. Each use gets its own named pool, so work queued by one (the next batch's decoding)
never holds up another (the half of a forest's rows the scoring thread waits for). On one core there are
no helpers: the work runs in line, as taking turns would only add hand-overs.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

_pools: dict[str, ThreadPoolExecutor] = {}
_lock = threading.Lock()


def cores() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def helper_pool(name: str, workers: int) -> ThreadPoolExecutor | None:
    """The pool called ``name`` (its threads are named after it), made on first use with ``workers`` threads;
    None on one core."""
    if cores() < 2:
        return None
    with _lock:
        pool = _pools.get(name)
        if pool is None:
            pool = _pools[name] = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix=name)
        return pool
