"""Chunk-parallel execution for launchers that mix numba kernels and BLAS calls.

Many small multi-threaded BLAS calls, each ending in a barrier, alternate badly with
numba's own parallel regions: on a busy machine every barrier can wait a whole time slice
for a descheduled thread (measured here: 36 GEMMs of 256x256x128 took 22 ms alone and
570 ms under load). ``run_chunks`` instead gives each Python thread whole chunks (its own
im2col or Winograd transform, its own single-threaded GEMMs) and joins once per call.
Chunks are handed out dynamically, so a thread that gets descheduled simply does fewer.

While chunks run, BLAS libraries are limited to one thread (through threadpoolctl, when
installed; that limit is process-wide, so it is taken once however many calls overlap and
lifted by the last one). Without threadpoolctl the chunks run one after another in the
calling thread, with BLAS threaded as configured.

``scratch`` hands out per-thread workspace buffers that are reused from call to call, so
a layer does not pay the page faults of fresh multi-MiB allocations each time.
"""
from __future__ import annotations

import contextlib
import os
import threading
import weakref
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np

__all__ = ["run_chunks", "run_ranges", "split_range", "single_threaded_blas", "scratch",
           "clear_scratch", "parallel_available"]

_LOCK = threading.Lock()
_POOL: ThreadPoolExecutor | None = None
_BLAS = None            # list of threadpoolctl lib controllers (BLAS), [] if none, or None
_LIMIT_DEPTH = 0
_LIMIT_SAVED: list = []
_TLS = threading.local()
# Every live thread's buffers, for clear_scratch. Weak: a thread's buffers go with the
# thread (its threading.local slot is the only strong reference).
_ALL_SCRATCH: weakref.WeakSet = weakref.WeakSet()
SCRATCH_KEEP_BYTES = 64 * 2**20     # larger buffers are not kept between calls
SCRATCH_KEEP_TOTAL = 256 * 2**20    # and at most this much per thread


class _Buffers(dict):
    """One thread's named buffers (a dict subclass, so a WeakSet can hold it; identity,
    not contents, tells two threads' buffers apart)."""
    __hash__ = object.__hash__
    __eq__ = object.__eq__


def _blas_controllers():
    global _BLAS
    if _BLAS is None:
        try:
            from threadpoolctl import ThreadpoolController
            _BLAS = [c for c in ThreadpoolController().lib_controllers
                     if c.user_api == "blas"]
        except Exception:            # not installed, or it failed to inspect the libraries
            _BLAS = []
    return _BLAS


def parallel_available() -> bool:
    """Whether BLAS can be pinned to one thread (threadpoolctl found a BLAS library)."""
    return bool(_blas_controllers())


@contextlib.contextmanager
def single_threaded_blas():
    """BLAS limited to one thread inside (re-entrant; a no-op without threadpoolctl).
    Launchers wrap their whole body so that small GEMMs outside the chunks (a filter
    transform) do not wake a BLAS thread pool either."""
    global _LIMIT_DEPTH, _LIMIT_SAVED
    ctrls = _blas_controllers()
    with _LOCK:
        if _LIMIT_DEPTH == 0:
            _LIMIT_SAVED = [c.num_threads for c in ctrls]
            for c in ctrls:
                c.set_num_threads(1)
        _LIMIT_DEPTH += 1
    try:
        yield
    finally:
        with _LOCK:
            _LIMIT_DEPTH -= 1
            if _LIMIT_DEPTH == 0:
                for c, n in zip(ctrls, _LIMIT_SAVED):
                    c.set_num_threads(n)


def _pool() -> ThreadPoolExecutor:
    global _POOL
    with _LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(max_workers=max(1, numba.config.NUMBA_NUM_THREADS),
                                       thread_name_prefix="fastconv")
        return _POOL


def _after_fork_in_child():
    """A forked child has only the thread that forked: the pool's workers and whatever
    thread held the lock are gone. A new lock, and a new pool on first use (the old one
    would queue work for workers that no longer exist and wait forever); a BLAS limit
    that a parent's call had taken is lifted, since that call never finishes here."""
    global _LOCK, _POOL, _LIMIT_DEPTH
    _LOCK = threading.Lock()
    _POOL = None
    if _LIMIT_DEPTH:
        _LIMIT_DEPTH = 0
        for c, n in zip(_BLAS or [], _LIMIT_SAVED):
            c.set_num_threads(n)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def run_chunks(fn, chunks, threads: int) -> None:
    """Call ``fn(chunk)`` for every chunk on up to ``threads`` Python threads (the caller
    is one of them), BLAS single-threaded meanwhile. ``fn`` must release the GIL for its
    heavy work (numba ``nogil`` kernels, numpy BLAS calls) and write disjoint outputs."""
    chunks = list(chunks)
    threads = min(threads, len(chunks))
    if not parallel_available():
        for c in chunks:
            fn(c)
        return
    if threads <= 1:
        # Still one BLAS thread: the caller asked for one thread, and many small
        # multi-threaded GEMMs are what this module avoids.
        with single_threaded_blas():
            for c in chunks:
                fn(c)
        return
    it = iter(chunks)
    take = threading.Lock()

    def worker():
        while True:
            with take:
                c = next(it, None)
            if c is None:
                return
            fn(c)

    with single_threaded_blas():
        futures = [_pool().submit(worker) for _ in range(threads - 1)]
        error = None
        try:
            worker()
        except BaseException as e:      # still join the others before re-raising
            error = e
        for f in futures:
            try:
                f.result()
            except BaseException as e:
                error = error or e
        if error is not None:
            raise error


def split_range(n: int, parts: int, least: int = 1) -> list:
    """[(a, b)] covering range(n) in at most ``parts`` near-equal pieces of at least
    ``least`` each (one piece when n < 2 * least)."""
    parts = max(1, min(parts, n // max(1, least)))
    step = max(1, -(-n // parts))
    return [(a, min(n, a + step)) for a in range(0, n, step)]


def run_ranges(fn, n: int, threads: int, per_thread: int = 8) -> None:
    """``fn(a, b)`` over range(n) split into up to ``per_thread`` pieces per thread, on
    up to ``threads`` Python threads (``run_chunks``): serial numba kernels over ranges
    of independent jobs, run where a numba parallel region's spinning workers would slow
    the BLAS or scipy.fft threads around it."""
    run_chunks(lambda r: fn(*r), split_range(n, per_thread * threads), threads)


def scratch(name: str, shape, dtype) -> np.ndarray:
    """A C-contiguous array of ``shape`` backed by this thread's reusable buffer ``name``
    (contents undefined). Valid until the same thread asks for ``name`` again."""
    dtype = np.dtype(dtype)
    n = 1
    for s in shape:
        n *= int(s)
    nbytes = n * dtype.itemsize
    bufs = getattr(_TLS, "bufs", None)
    if bufs is None:
        bufs = _TLS.bufs = _Buffers()
        with _LOCK:
            _ALL_SCRATCH.add(bufs)
    buf = bufs.get(name)
    if buf is None or buf.nbytes < nbytes:
        buf = np.empty(max(nbytes, 1), np.uint8)
        if nbytes <= SCRATCH_KEEP_BYTES:
            bufs.pop(name, None)
            kept = sum(b.nbytes for b in bufs.values())
            if kept + buf.nbytes > SCRATCH_KEEP_TOTAL:
                bufs.clear()             # many names in one thread: start over
            bufs[name] = buf
    return buf[:nbytes].view(dtype).reshape(shape)


def clear_scratch() -> None:
    """Drop every thread's kept workspace buffers (memory measurements, tests)."""
    with _LOCK:
        for bufs in list(_ALL_SCRATCH):
            bufs.clear()
