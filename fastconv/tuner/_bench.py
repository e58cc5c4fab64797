"""The timing harness used by the tuner: a warm-up call first (it pays any JIT compile and
is never counted), then repeats until the budget is spent; the median is reported."""
from __future__ import annotations

import statistics
import time


def time_call(fn, budget_s: float, min_repeat: int = 3, max_repeat: int = 15) -> tuple:
    """(median seconds, warm-up seconds)."""
    t0 = time.perf_counter()
    fn()
    warm = time.perf_counter() - t0
    samples = []
    deadline = time.perf_counter() + budget_s
    while len(samples) < max_repeat:
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
        if len(samples) >= min_repeat and time.perf_counter() > deadline:
            break
    return statistics.median(samples), warm
