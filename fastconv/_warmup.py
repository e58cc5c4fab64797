"""``python -m fastconv warmup``: compile every kernel into numba's on-disk cache ahead of
the first real call (container images, CI), and report what that cache holds (``info``).

Kernels are compiled by tiny calls through the public API, one per entry point, method
and rank, so exactly the signatures that real calls of those dtypes and ranks need are
compiled (the launchers pick kernels by dtype, layout and shape class, not by size: the
direct kernels fold ranks 1-3 into one 3-D kernel per dtype, the conv layers pick a
register-tiled kernel when a layer has enough output columns and channels and a row kernel
otherwise, so both shapes are called). Each call is then repeated under ``threads(1)``,
which runs the serial twins (``_jit.serial_twin``) that small work and one-thread callers
use, and once more as it is, which runs the direct method's small-work kernel
(``kernels.cpu.direct.small_work``). numba writes each compiled signature to its cache (``NUMBA_CACHE_DIR`` when set,
else ``__pycache__`` beside the sources or the user-wide cache); a later process loads
it in milliseconds instead of compiling for seconds.

A marker file beside the cache records the fastconv and numba versions and the dtypes and
ranks warmed; ``info`` compares it with the running versions.
"""
from __future__ import annotations

import contextlib
import json
import os
import time

DTYPES = ("float32", "float64")
RANKS = (1, 2, 3)
MARKER = "fastconv-warmup.json"

_PKG = os.path.dirname(os.path.abspath(__file__))
# The folders whose modules define jit functions (numba caches per source folder).
_SOURCE_DIRS = (_PKG, os.path.join(_PKG, "kernels", "cpu"))


def _calls(dtype: str, rank: int):
    """(label, thunk) pairs: one tiny public call per entry point and method."""
    import numpy as np

    import fastconv
    from fastconv import ndimage, nn

    rng = np.random.default_rng(0)
    dt = np.dtype(dtype)

    def arr(shape):
        return rng.standard_normal(shape).astype(dt)

    x = arr((12,) * rank)
    w = arr((3,) * rank)
    tag = f"{dtype} {rank}-D"
    calls = []
    # A kernel that is a product of 1-D kernels, so that method="separable" applies.
    w_sep = np.ones((), dt)
    for _ in range(rank):
        w_sep = np.multiply.outer(w_sep, arr(3))
    for method in ("direct", "fft", "oa", "separable"):
        for mode in ("full", "same", "valid"):
            calls.append((f"convolve {method} {mode} {tag}",
                          lambda m=method, md=mode: fastconv.convolve(x, w_sep, md, method=m)))
    calls.append((f"fftconvolve axes {tag}",
                  lambda: fastconv.fftconvolve(x, w[..., :1] if rank > 1 else w, "same",
                                               axes=rank - 1)))
    if rank == 2:
        for boundary in ("fill", "wrap", "symm"):
            calls.append((f"convolve2d {boundary} {tag}",
                          lambda b=boundary: fastconv.convolve2d(x, w, "same", boundary=b)))
    for mode in ("reflect", "constant", "nearest", "mirror", "wrap"):
        calls.append((f"ndimage.correlate1d {mode} {tag}",
                      lambda md=mode: ndimage.correlate1d(x, w.ravel()[:3], mode=md)))
        calls.append((f"ndimage.correlate {mode} {tag}",
                      lambda md=mode: ndimage.correlate(x, w, mode=md)))
    calls += [
        (f"ndimage.gaussian_filter {tag}", lambda: ndimage.gaussian_filter(x, 1.0)),
        (f"ndimage.uniform_filter {tag}", lambda: ndimage.uniform_filter(x, 3)),
        (f"ndimage.sobel {tag}", lambda: ndimage.sobel(x)),
        (f"ndimage.laplace {tag}", lambda: ndimage.laplace(x)),
    ]
    conv = getattr(nn, f"conv{rank}d")
    conv_t = getattr(nn, f"conv_transpose{rank}d")
    # Wide (register-tiled kernel: >= 32 output columns, >= 3 output channels per group)
    # and narrow (row kernel) layers.
    wide = (arr((1, 2) + (6,) * (rank - 1) + (40,)), arr((4, 2) + (3,) * rank))
    narrow = (arr((1, 2) + (6,) * rank), arr((2, 2) + (3,) * rank))
    # Many output channels: Winograd's own batched GEMM takes over from BLAS at >= 32
    # (float32) or 16 (float64) of them.
    many = (arr((1, 2) + (6,) * rank), arr((32, 2) + (3,) * rank))
    for method in nn.METHODS[1:]:
        for name, (xi, wi) in (("wide", wide), ("narrow", narrow), ("many", many)):
            calls.append((f"nn.conv{rank}d {method} {name} {tag}",
                          lambda m=method, a=xi, b=wi: conv(a, b, padding=1, method=m)))
        calls.append((f"nn.conv{rank}d {method} stride 2 {tag}",
                      lambda m=method: conv(wide[0], wide[1], stride=2, method=m)))
        calls.append((f"nn.conv_transpose{rank}d {method} {tag}",
                      lambda m=method: conv_t(narrow[0], narrow[1].swapaxes(0, 1).copy(),
                                              stride=2, method=m)))
    # The depthwise kernels (one input channel per output channel), forward and weight
    # gradient, and the weight gradient's GEMM.
    dw = (arr((1, 2) + (6,) * rank), arr((2, 1) + (3,) * rank))
    go = arr((1, 2) + (6,) * rank)
    conv_w = getattr(nn, f"conv{rank}d_weight")
    calls.append((f"nn.conv{rank}d depthwise {tag}",
                  lambda: conv(dw[0], dw[1], padding=1, groups=2, method="direct")))
    for method in ("direct", "gemm"):
        calls.append((f"nn.conv{rank}d_weight {method} {tag}",
                      lambda m=method: conv_w(dw[0], dw[1].shape, go, padding=1, groups=2,
                                              method=m)))
    return calls


def _try(thunk):
    """Run one warm-up call. A method that does not apply to a shape (winograd on a
    strided layer, say) raises ValueError before any kernel runs: nothing to compile."""
    try:
        thunk()
        return True
    except (ValueError, NotImplementedError):
        return False


@contextlib.contextmanager
def _parallel_regions():
    """Tiny calls run the serial twins (their work is below ``_jit.LAUNCH_WORK``) or the
    direct method's small-work kernel; with the break-even set to 0 they take the
    parallel kernels (and, on one thread, the twins) that large calls of the same dtype
    and layout run. Process-wide while it lasts: warmup is a command of its own."""
    from fastconv import _jit
    saved = _jit.LAUNCH_WORK
    _jit.LAUNCH_WORK = 0
    try:
        yield
    finally:
        _jit.LAUNCH_WORK = saved


def run(dtypes=DTYPES, ranks=RANKS, progress=None) -> dict:
    """Compile every kernel for ``dtypes`` x ``ranks`` (parallel kernels and their serial
    twins) into numba's disk cache; write the marker. Returns a summary."""
    from fastconv import _config

    for d in dtypes:
        if d not in DTYPES:
            raise ValueError(f"dtypes: {d!r} is not one of {DTYPES}")
    for r in ranks:
        if r not in RANKS:
            raise ValueError(f"ranks: {r!r} is not one of {RANKS}")
    # Compile for real: the first-call tier (_firstcall.py) would serve these tiny calls
    # with launchers that need no compile.
    with _config.override(first_call="compile"):
        return _run(dtypes, ranks, progress)


def _run(dtypes, ranks, progress):
    import fastconv
    from fastconv import _config
    plan = [(d, r) for d in dtypes for r in ranks]
    t0 = time.perf_counter()
    done = skipped = 0
    # Parallel kernels first, then the same calls on one thread for the serial twins,
    # then as they are (the direct method's small-work kernel).
    jobs = [(d, r, t) for t in ("parallel", "serial", "small") for d, r in plan]
    total = sum(len(_calls(d, r)) for d, r in plan) * 3
    i = 0
    for d, r, t in jobs:
        for label, thunk in _calls(d, r):
            if progress is not None:
                progress(i, total, label + ("" if t == "parallel" else f" ({t})"))
            if t == "small":
                ok = _try(thunk)
            else:
                with _parallel_regions(), _config.workers_scope(1 if t == "serial" else None):
                    ok = _try(thunk)
            done += ok
            skipped += not ok
            i += 1
    if progress is not None:
        progress(total, total, "done")
    summary = {"fastconv": fastconv.__version__, "numba": _numba_version(),
               "dtypes": list(dtypes), "ranks": list(ranks), "calls": done,
               "skipped": skipped, "seconds": round(time.perf_counter() - t0, 1)}
    path = marker_path()
    if path is not None:
        with open(path, "w") as f:
            json.dump(summary, f, indent=1)
    from fastconv import _firstcall
    _firstcall.record_warmed(dtypes, ranks)
    return summary


def _numba_version() -> str:
    import numba
    return numba.__version__


def cache_dirs() -> dict:
    """Source folder -> the folder numba's cache locator picks for it (None: no cache)."""
    from numba.core.caching import CacheImpl

    def probe():   # a function to locate: locators only read its first line number
        pass

    found = {}
    for src in _SOURCE_DIRS:
        py_file = os.path.join(src, "__init__.py")
        found[src] = None
        for cls in CacheImpl._locator_classes:
            try:
                loc = cls.from_function(probe, py_file)
            except Exception:       # a locator that cannot serve this file
                loc = None
            if loc is not None:
                found[src] = loc.get_cache_path()
                break
    return found


def marker_path():
    """Where the warm-up marker lives: the cache folder of the kernel modules."""
    path = cache_dirs().get(_SOURCE_DIRS[1])
    return None if path is None else os.path.join(path, MARKER)


def cached_index_files() -> dict:
    """Kernel module -> number of numba cache index files (one per cached function; the
    serial twins count separately) for fastconv's sources."""
    counts: dict = {}
    for src, path in cache_dirs().items():
        if path is None or not os.path.isdir(path):
            continue
        modules = {f[:-3] for f in os.listdir(src) if f.endswith(".py")}
        for f in os.listdir(path):
            stem = f.split(".", 1)[0]
            if f.endswith(".nbi") and stem in modules:
                counts[stem] = counts.get(stem, 0) + 1
    return counts


def status() -> str:
    """The ``compiled`` line of ``python -m fastconv info``."""
    import fastconv
    counts = cached_index_files()
    if not counts:
        text = "nothing cached"
    else:
        text = (f"{sum(counts.values())} cached functions ("
                + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) + ")")
    path = marker_path()
    if path is None or not os.path.exists(path):
        return text + "; no warmup run"
    try:
        with open(path) as f:
            m = json.load(f)
        same = m.get("fastconv") == fastconv.__version__ and m.get("numba") == _numba_version()
        what = (f"{','.join(m['dtypes'])} ranks {','.join(map(str, m['ranks']))}")
    except (OSError, ValueError, KeyError, TypeError):
        return text + "; warmup marker unreadable"
    return text + (f"; warmed up for {what}" if same else
                   f"; warmup for {what} was by fastconv {m.get('fastconv')} / numba "
                   f"{m.get('numba')} (stale: run warmup again)")
