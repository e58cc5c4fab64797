from __future__ import annotations

import contextlib
import random
import statistics
import sys
import time
from dataclasses import dataclass, field
from typing import Callable

import numba


@dataclass(frozen=True)
class Case:
    """One benchmark point.

    ``make()`` returns ``{label: callable}``; labels of peers that are not installed are
    simply left out. ``goals`` maps a peer label to the speed ratio fastconv must reach
    (peer time / fastconv time >= goal). ``min_time``: seconds per timing sample (calls
    of one contender back to back).
    """
    group: str
    name: str
    make: Callable[[], dict]
    goals: dict = field(default_factory=dict)
    subject: str = "fastconv"
    min_time: float = 0.02


@dataclass
class Result:
    case: Case
    median_s: dict           # label -> median seconds
    first_call_s: dict       # label -> first (warm-up) call seconds, JIT included

    def ratio(self, peer: str) -> float | None:
        """peer time / subject time (> 1 means fastconv is faster)."""
        mine = self.median_s.get(self.case.subject)
        theirs = self.median_s.get(peer)
        if mine is None or theirs is None or mine == 0:
            return None
        return theirs / mine


@contextlib.contextmanager
def peer_threads(n: int):
    """Give every contender the same thread count: numba, scipy.fft (through ``workers``
    in the cases), OpenCV and torch."""
    old = numba.get_num_threads()
    numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    restore = []
    try:
        import cv2
        restore.append((cv2.setNumThreads, cv2.getNumThreads()))
        cv2.setNumThreads(n)
    except ImportError:
        pass
    torch = sys.modules.get("torch")     # only when a case brought torch in: its idle
    if torch is not None:                # OpenMP workers otherwise compete for the cores
        restore.append((torch.set_num_threads, torch.get_num_threads()))
        torch.set_num_threads(n)
    try:
        yield n
    finally:
        numba.set_num_threads(old)
        for setter, value in restore:
            setter(value)


def median_time(fn, repeat: int = 5) -> float:
    """Median seconds of ``repeat`` calls of ``fn`` after one warm-up call."""
    fn()
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def measure(fns: dict, repeat: int = 7, min_time: float = 0.02) -> tuple[dict, dict]:
    """Median seconds per call for each callable, timed interleaved in a shuffled order
    each round (A B C, C A B, B C A, ...; seeded, so runs are repeatable). Each sample
    starts with one untimed call: the first call after another library's pays for the
    threads that library leaves spinning (torch's OpenMP workers: a 12 ms fastconv layer
    took 19-23 ms right after a torch call, 12 from its second call on, two threads),
    which a user timing one library in a loop never sees."""
    first = {}
    for label, fn in fns.items():
        t0 = time.perf_counter()
        fn()
        first[label] = time.perf_counter() - t0
    # Calls per timing sample so one sample lasts at least min_time.
    number = {}
    for label, fn in fns.items():
        t0 = time.perf_counter()
        fn()
        dt = time.perf_counter() - t0
        number[label] = max(1, int(min_time / max(dt, 1e-7)))
    samples = {label: [] for label in fns}
    labels = list(fns)
    order = random.Random(0)
    for r in range(repeat):
        # A fresh order each round: whoever runs right after a contender that evicted
        # the caches or faulted in fresh pages pays for it, so nobody may always be that
        # (a rotation keeps the same neighbours, a shuffle does not).
        if r:
            order.shuffle(labels)
        for label in labels:
            fn = fns[label]
            n = number[label]
            fn()                                    # the lead-in (see above)
            t0 = time.perf_counter()
            for _ in range(n):
                fn()
            samples[label].append((time.perf_counter() - t0) / n)
    return {k: statistics.median(v) for k, v in samples.items()}, first


def run_cases(cases, threads: int = 2, repeat: int = 7, progress=None) -> list[Result]:
    results = []
    with peer_threads(threads):
        for i, case in enumerate(cases):
            if progress:
                progress(i, len(cases), case)
            fns = case.make()
            med, first = measure(fns, repeat=repeat, min_time=case.min_time)
            results.append(Result(case, med, first))
    return results


def format_table(results) -> str:
    """A plain-text table: times in ms, and each peer's ratio (peer/fastconv) with goal."""
    lines = []
    header = f"{'group':<9} {'case':<44} {'fastconv ms':>11}  peers: ms (ratio peer/fastconv, goal)"
    lines.append(header)
    lines.append("-" * len(header))
    for r in results:
        mine = r.median_s.get(r.case.subject)
        cells = []
        for label, t in r.median_s.items():
            if label == r.case.subject:
                continue
            ratio = r.ratio(label)
            goal = r.case.goals.get(label)
            mark = ""
            if goal is not None and ratio is not None:
                mark = f", goal {goal:g} {'ok' if ratio >= goal else 'MISSED'}"
            cells.append(f"{label} {t * 1e3:.3g} ({ratio:.2f}x{mark})")
        mine_s = f"{mine * 1e3:.3g}" if mine is not None else "-"
        lines.append(f"{r.case.group:<9} {r.case.name:<44} {mine_s:>11}  " + "; ".join(cells))
    return "\n".join(lines)
