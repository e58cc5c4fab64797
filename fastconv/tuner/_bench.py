"""The timing harness used by the tuner: a warm-up call first (it pays any JIT compile and
is never counted), then repeats until the budget is spent; ``time_call`` reports the
median, ``time_interleaved`` (the tuner's race) each contender's fastest round.
Contenders are timed interleaved, one call each per round (after an untimed one when the
call is short), so a burst of load from elsewhere on a shared machine hits them alike
instead of deciding the race."""
from __future__ import annotations

import statistics
import time


# Contenders faster than this get an untimed call before each timed one (see
# time_interleaved); slower ones are timed as they come (a lead-in would be a small
# share of them, and would double a long measurement).
LEAD_IN_BELOW_S = 0.02


def _no_wait():
    pass


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


def time_interleaved(fns: dict, budget_s: float, min_repeat: int = 3,
                     max_repeat: int = 15, sync=None, timer=None) -> dict:
    """{name: fastest seconds} of ``fns`` (name -> callable), after one warm-up call each
    (it pays the JIT compile, on a GPU the kernel's first launch too),
    in rounds of one call per contender until ``budget_s`` is spent. ``sync``: the
    device's hook that waits for queued work (a GPU launch returns before it is done), run
    before each clock starts and stops; None on the CPU. ``timer``: the device's own
    clock, ``timer(fn) -> seconds`` (CUDA events around the call), used instead of the
    host clock where given."""
    wait = sync if sync is not None else _no_wait
    for fn in fns.values():
        fn()
    wait()
    samples = {name: [] for name in fns}
    deadline = time.perf_counter() + budget_s
    for r in range(max_repeat):
        for name, fn in fns.items():
            if timer is not None:
                samples[name].append(timer(fn))
                continue
            if sync is None and samples[name] and samples[name][-1] < LEAD_IN_BELOW_S:
                # An untimed call first: the call right after another contender pays for
                # what that one left behind (its OpenMP workers spin on for a while after
                # a numba region and take a core from a method run on Python threads:
                # a 2 ms GEMM layer took 3.5-7.5 ms right after a torch call, ~1.9 ms
                # from its third call on).
                fn()
            wait()
            t0 = time.perf_counter()
            fn()
            wait()
            samples[name].append(time.perf_counter() - t0)
        if r + 1 >= min_repeat and time.perf_counter() > deadline:
            break
    # The fastest round of each: on a shared machine noise only adds time, and the
    # median kept some of it (a 288 x 64 1x1 layer, batch 8: gemm 6.3 ms alone, direct
    # 9.3; right after a torch call the medians picked direct in 3 of 6 tunings, the
    # minima gemm in 6 of 6).
    return {name: min(v) for name, v in samples.items()}
