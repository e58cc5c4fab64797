"""Benchmark cases for the direct kernel against its peers, and its compile times.

The fastconv side calls the direct launcher as scipy's 'same' convolution (correlation
with the flipped kernel, ``start = -(k // 2)`` per axis, zero fill), float32, into a
reused output buffer; peers get an output buffer too where their API takes one.

* cv2.filter2D correlates: it gets the flipped kernel, anchor (k//2, k//2) and
  BORDER_CONSTANT, which is exactly the same computation.
* scipy.ndimage.convolve(mode='constant') and np.convolve(mode='same') as they are.
* scipy.signal.convolve2d (single-threaded, direct) only on 512x512: on 2048x2048 it
  takes seconds per call.

Run: ``python -m fastconv.bench.cases_direct [--threads N] [--repeat R] [--no-compile]``.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np

from ._harness import Case, format_table, run_cases
from ..kernels.cpu import direct

IMAGE = 2048
SMALL = 512
SIGNAL = 1_000_000
KERNELS_2D = (3, 5, 7, 9)
TAPS_1D = (3, 7, 15, 31, 63)


def _same_start(w):
    return tuple(-(k // 2) for k in w.shape)


def _flipped(w):
    return np.ascontiguousarray(w[(slice(None, None, -1),) * w.ndim])


def _image_case(n, k, with_convolve2d):
    def make():
        rng = np.random.default_rng(k)
        x = rng.standard_normal((n, n)).astype(np.float32)
        w = rng.standard_normal((k, k)).astype(np.float32)
        wc = _flipped(w)                       # convolution = correlation with this
        start = _same_start(w)
        out = np.empty_like(x)
        fns = {"fastconv": lambda: direct.correlate(x, wc, out, start)}
        try:
            import cv2
            dst = np.empty_like(x)
            fns["cv2.filter2D"] = lambda: cv2.filter2D(
                x, -1, wc, dst=dst, anchor=(k // 2, k // 2),
                borderType=cv2.BORDER_CONSTANT)
        except ImportError:
            pass
        import scipy.ndimage
        import scipy.signal
        nd_out = np.empty_like(x)
        fns["ndimage.convolve"] = lambda: scipy.ndimage.convolve(
            x, w, output=nd_out, mode="constant")
        if with_convolve2d:
            fns["signal.convolve2d"] = lambda: scipy.signal.convolve2d(x, w, mode="same")
        return fns

    goals = {} if with_convolve2d else {"cv2.filter2D": 1.0, "ndimage.convolve": 10.0}
    return Case("direct2d", f"{n}x{n} f32 same {k}x{k}", make, goals)


def _signal_case(n, k):
    def make():
        rng = np.random.default_rng(k)
        x = rng.standard_normal(n).astype(np.float32)
        w = rng.standard_normal(k).astype(np.float32)
        wc = _flipped(w)
        start = _same_start(w)
        out = np.empty_like(x)
        return {"fastconv": lambda: direct.correlate(x, wc, out, start),
                "np.convolve": lambda: np.convolve(x, w, mode="same")}

    return Case("direct1d", f"N={n:.0e} f32 same {k} taps", make, {"np.convolve": 1.0})


def _volume_case(n, k):
    def make():
        rng = np.random.default_rng(k)
        x = rng.standard_normal((n, n, n)).astype(np.float32)
        w = rng.standard_normal((k, k, k)).astype(np.float32)
        wc = _flipped(w)
        start = _same_start(w)
        out = np.empty_like(x)
        import scipy.ndimage
        nd_out = np.empty_like(x)
        return {"fastconv": lambda: direct.correlate(x, wc, out, start),
                "ndimage.convolve": lambda: scipy.ndimage.convolve(
                    x, w, output=nd_out, mode="constant")}

    return Case("direct3d", f"{n}^3 f32 same {k}^3", make)


CASES = (
    [_image_case(IMAGE, k, False) for k in KERNELS_2D]
    + [_image_case(SMALL, k, True) for k in (3, 9)]
    + [_signal_case(SIGNAL, k) for k in TAPS_1D]
    + [_volume_case(128, 3)]
)


# -- compile time ---------------------------------------------------------------------
_FIRST_CALLS = r"""
import sys, time
t0 = time.perf_counter()
import numpy as np
from fastconv.kernels.cpu import direct
print(f"import {time.perf_counter() - t0:.2f}")
for name in sys.argv[1:]:
    dt = np.dtype(name)
    x = np.ones((8, 8), dt); w = np.ones((3, 3), dt); out = np.empty((8, 8), dt)
    t = time.perf_counter()
    direct.correlate(x, w, out, (-1, -1))
    print(f"{name} {time.perf_counter() - t:.2f}")
"""


def compile_times(dtypes=("float32", "float64", "complex128", "int64")):
    """First-call seconds per dtype signature in a new process: cold (an empty numba
    cache dir) and warm (the on-disk cache the cold run wrote). Returns
    {"cold": {...}, "warm": {...}} with "import" and one entry per dtype."""
    result = {}
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    with tempfile.TemporaryDirectory(prefix="fastconv-numba-cache-") as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache,
                   PYTHONPATH=os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]))
        for label in ("cold", "warm"):
            proc = subprocess.run([sys.executable, "-c", _FIRST_CALLS, *dtypes], env=env,
                                  capture_output=True, text=True, check=True)
            result[label] = {k: float(v) for k, v in
                             (line.split() for line in proc.stdout.splitlines())}
    return result


def format_compile_times(times) -> str:
    keys = list(times["cold"])
    lines = ["first call (s)  " + "  ".join(f"{k:>10}" for k in keys)]
    for label, row in times.items():
        lines.append(f"{label:<15} " + "  ".join(f"{row[k]:>10.2f}" for k in keys))
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--no-compile", action="store_true",
                        help="skip the cold/warm compile-time runs")
    args = parser.parse_args(argv)
    results = run_cases(CASES, threads=args.threads, repeat=args.repeat,
                        progress=lambda i, n, c: print(f"[{i + 1}/{n}] {c.name}",
                                                       file=sys.stderr, flush=True))
    print(f"threads: {args.threads} for every contender; median of {args.repeat}, "
          f"interleaved; JIT compile excluded")
    print(format_table(results))
    if not args.no_compile:
        print()
        print(format_compile_times(compile_times()))


if __name__ == "__main__":
    main()
