"""Benchmark cases for the fast methods: FFT, overlap-add and separable (float32, 'same').

``python -m fastconv.bench.cases_fft [--threads 2] [--repeat 7] [--quick]`` prints the
table (peer time / fastconv time, goals from the issue).  Every contender allocates its
own output, and every peer runs on the same thread count (scipy.fft through
``scipy.fft.set_workers``; scipy.ndimage is single-threaded by design).
"""
from __future__ import annotations

import argparse
import contextlib

import numpy as np

from . import Case, format_table, median_time, run_cases


def _workers(n):
    import scipy.fft
    return scipy.fft.set_workers(n)


def _rng():
    return np.random.default_rng(1234)


def _threads():
    from .._config import get_num_threads
    return get_num_threads()


def _image_case(n, k):
    def make():
        import scipy.signal as ss
        from ..kernels.cpu import fft
        x = _rng().standard_normal((n, n)).astype(np.float32)
        w = _rng().standard_normal((k, k)).astype(np.float32)
        wf = np.ascontiguousarray(w[::-1, ::-1])        # convolution kernel for scipy
        s = -(k // 2)
        t = _threads()

        def ours():
            out = np.empty_like(x)
            return fft.correlate_oa(x, w, out, (s, s))

        fns = {"fastconv": ours}

        def sp_fft():
            with _workers(t):
                return ss.fftconvolve(x, wf, "same")

        def sp_oa():
            with _workers(t):
                return ss.oaconvolve(x, wf, "same")

        fns["scipy.fftconvolve"] = sp_fft
        fns["scipy.oaconvolve"] = sp_oa
        with contextlib.suppress(ImportError):
            import cv2
            fns["cv2.filter2D"] = lambda: cv2.filter2D(x, -1, w,
                                                       borderType=cv2.BORDER_CONSTANT)
        return fns
    goals = {"scipy.fftconvolve": 1.2, "scipy.oaconvolve": 1.2, "cv2.filter2D": 1.2}
    return Case("fft-2d", f"{n}x{n} {k}x{k} f32 same", make, goals)


def _gaussian_case(n):
    def make():
        import scipy.ndimage as nd
        from .._separable import separable_factors
        from ..kernels.cpu import separable
        x = _rng().standard_normal((n, n)).astype(np.float32)
        r = 9                                            # sigma 3, truncate 3 -> 19 taps
        g = np.exp(-0.5 * (np.arange(-r, r + 1) / 3.0) ** 2)
        g = (g / g.sum()).astype(np.float32)
        w = np.outer(g, g)
        factors = [separable_factors(w, np.float32)]

        def ours():
            out = np.empty_like(x)
            return separable.correlate_separable(x, w, out, (-r, -r), "reflect",
                                                 factors=factors)

        fns = {"fastconv": ours}
        with contextlib.suppress(ImportError):
            import cv2
            fns["cv2.sepFilter2D"] = lambda: cv2.sepFilter2D(
                x, -1, g, g, borderType=cv2.BORDER_REFLECT_101)
        fns["scipy.ndimage.gaussian_filter"] = lambda: nd.gaussian_filter(
            x, 3.0, truncate=3.0, mode="mirror")
        return fns
    goals = {"cv2.sepFilter2D": 1.0, "scipy.ndimage.gaussian_filter": 5.0}
    return Case("separable", f"gaussian s3 19 taps {n}x{n} f32", make, goals)


def _signal_case(n, k):
    def make():
        import scipy.signal as ss
        from ..kernels.cpu import fft
        x = _rng().standard_normal(n).astype(np.float32)
        w = _rng().standard_normal(k).astype(np.float32)
        wf = np.ascontiguousarray(w[::-1])
        t = _threads()

        def ours():
            out = np.empty_like(x)
            return fft.correlate_oa(x, w, out, (-(k // 2),))

        def sp_oa():
            with _workers(t):
                return ss.oaconvolve(x, wf, "same")
        return {"fastconv": ours, "scipy.oaconvolve": sp_oa}
    return Case("oa-1d", f"N={n:.0e} {k} taps f32 same", make, {"scipy.oaconvolve": 1.2})


def _volume_case(n, k):
    def make():
        import scipy.ndimage as nd
        import scipy.signal as ss
        from ..kernels.cpu import fft
        x = _rng().standard_normal((n, n, n)).astype(np.float32)
        w = _rng().standard_normal((k, k, k)).astype(np.float32)
        wf = np.ascontiguousarray(w[::-1, ::-1, ::-1])
        s = -(k // 2)
        t = _threads()

        def ours():
            out = np.empty_like(x)
            return fft.correlate_oa(x, w, out, (s, s, s))

        def sp_fft():
            with _workers(t):
                return ss.fftconvolve(x, wf, "same")
        return {"fastconv": ours, "scipy.fftconvolve": sp_fft,
                "scipy.ndimage.convolve": lambda: nd.convolve(x, wf, mode="constant")}
    goals = {"scipy.fftconvolve": 1.5, "scipy.ndimage.convolve": 1.5}
    return Case("fft-3d", f"{n}^3 {k}^3 f32 same", make, goals)


CASES = [
    _image_case(2048, 31),
    _image_case(2048, 63),
    _gaussian_case(2048),
    _signal_case(10**6, 255),
    _signal_case(10**6, 1023),
    _signal_case(10**6, 4095),
    _volume_case(128, 7),
]


CROSSOVER_GRID = {
    1: [((10**5,), [8, 16, 32, 64, 128, 256]), ((10**6,), [16, 32, 64, 128, 256, 512])],
    2: [((512, 512), [3, 5, 7, 9, 11, 15, 21]), ((2048, 2048), [3, 5, 7, 9, 11, 15, 21])],
    3: [((64, 64, 64), [3, 5, 7, 9]), ((128, 128, 128), [3, 5, 7])],
}


def crossover(ndims=(1, 2, 3), repeat=3, dtype=np.float32):
    """Time direct, separable, fft and oa ('same', random kernel; a separable kernel for
    the separable column) over kernel sizes; prints ms per method and the winner.  A
    direct method 4x slower than the best stops being timed for larger kernels."""
    from .._separable import separable_factors
    from ..kernels.cpu import direct, fft, separable
    rows = []
    for nd in ndims:
        for shape, ks in CROSSOVER_GRID[nd]:
            x = _rng().standard_normal(shape).astype(dtype)
            out = np.empty(shape, dtype)
            dropped = set()
            for k in ks:
                w = _rng().standard_normal((k,) * nd).astype(dtype)
                g = np.exp(-0.5 * (np.arange(k) - k // 2) ** 2 / max(k / 6, 0.5) ** 2)
                gs = g.astype(dtype)
                for _ in range(nd - 1):
                    gs = np.multiply.outer(gs, g.astype(dtype))
                fac = [separable_factors(gs, dtype)] if nd > 1 else None
                s = (-(k // 2),) * nd
                fns = {"direct": lambda: direct.correlate(x, w, out, s),
                       "fft": lambda: fft.correlate_fft(x, w, out, s),
                       "oa": lambda: fft.correlate_oa(x, w, out, s)}
                if fac is not None:
                    fns["separable"] = lambda: separable.correlate_separable(
                        x, gs, out, s, factors=fac)
                times = {}
                for name, fn in fns.items():
                    if name not in dropped:
                        times[name] = median_time(fn, repeat)
                general = {n: t for n, t in times.items() if n != "separable"}
                best = min(general.values())
                if general.get("direct", 0) > 4 * best:      # grows with k; FFT does not
                    dropped.add("direct")
                rows.append((shape, k, times, min(general, key=general.get)))
                cells = "  ".join(f"{n} {t * 1e3:8.2f}" for n, t in times.items())
                print(f"{'x'.join(map(str, shape)):>12} k={k:<4} {cells}   "
                      f"best(non-separable): {rows[-1][3]}", flush=True)
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeat", type=int, default=7)
    p.add_argument("--group", default=None, help="only cases of this group")
    p.add_argument("--crossover", action="store_true",
                   help="time direct/separable/fft/oa over kernel sizes instead")
    args = p.parse_args(argv)
    if args.crossover:
        from .._config import threads
        with threads(min(args.threads, __import__("numba").config.NUMBA_NUM_THREADS)):
            return crossover(repeat=max(3, args.repeat // 2))
    cases = [c for c in CASES if args.group in (None, c.group)]
    results = run_cases(cases, threads=args.threads, repeat=args.repeat,
                        progress=lambda i, n, c: print(f"[{i + 1}/{n}] {c.name}", flush=True))
    print(format_table(results))
    return results


if __name__ == "__main__":
    main()
