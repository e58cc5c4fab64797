"""Benchmark cases for fastconv.ndimage against OpenCV and scipy.ndimage.

float32, 2048 x 2048 unless noted (float64 cases: the same filters on float64 data, where
OpenCV computes in float64 as well), 2 threads for every threaded contender (scipy.ndimage
is single-threaded), OpenCV with the border type matching scipy's mode ('reflect' =
cv2.BORDER_REFLECT), every contender writing into a preallocated output.

    python -m fastconv.bench.cases_ndimage [--threads N] [--repeat R] [--quick]
"""
from __future__ import annotations

import argparse

import numpy as np

from . import Case, format_table, run_cases

N = 2048


def _image(shape=(N, N), dtype=np.float32):
    return np.random.default_rng(0).standard_normal(shape).astype(dtype)


def _cv2():
    try:
        import cv2
    except ImportError:
        return None
    return cv2


def _gaussian(sigma, dtype=np.float32):
    def make():
        import scipy.ndimage as sn
        from .. import ndimage as fn
        x = _image(dtype=dtype)
        out = np.empty_like(x)
        fns = {"fastconv": lambda: fn.gaussian_filter(x, sigma, output=out)}
        cv2 = _cv2()
        if cv2 is not None:
            r = int(4.0 * sigma + 0.5)        # scipy's radius for truncate=4
            dst = np.empty_like(x)
            fns["cv2"] = lambda: cv2.GaussianBlur(x, (2 * r + 1, 2 * r + 1), sigma, dst=dst,
                                                  sigmaY=sigma,
                                                  borderType=cv2.BORDER_REFLECT)
        sout = np.empty_like(x)
        fns["scipy"] = lambda: sn.gaussian_filter(x, sigma, output=sout)
        return fns
    return make


def _sobel(dtype=np.float32):
    def make():
        import scipy.ndimage as sn
        from .. import ndimage as fn
        x = _image(dtype=dtype)
        out = np.empty_like(x)
        fns = {"fastconv": lambda: fn.sobel(x, axis=-1, output=out)}
        cv2 = _cv2()
        if cv2 is not None:
            dst = np.empty_like(x)
            depth = cv2.CV_32F if x.dtype == np.float32 else cv2.CV_64F
            fns["cv2"] = lambda: cv2.Sobel(x, depth, 1, 0, dst=dst, ksize=3,
                                           borderType=cv2.BORDER_REFLECT)
        sout = np.empty_like(x)
        fns["scipy"] = lambda: sn.sobel(x, axis=-1, output=sout)
        return fns
    return make


def _uniform(size, dtype=np.float32):
    def make():
        import scipy.ndimage as sn
        from .. import ndimage as fn
        x = _image(dtype=dtype)
        out = np.empty_like(x)
        fns = {"fastconv": lambda: fn.uniform_filter(x, size, output=out)}
        cv2 = _cv2()
        if cv2 is not None:
            dst = np.empty_like(x)
            fns["cv2"] = lambda: cv2.blur(x, (size, size), dst=dst,
                                          borderType=cv2.BORDER_REFLECT)
        sout = np.empty_like(x)
        fns["scipy"] = lambda: sn.uniform_filter(x, size, output=sout)
        return fns
    return make


def _convolve5():
    import scipy.ndimage as sn
    from .. import ndimage as fn
    x = _image()
    w = np.random.default_rng(1).standard_normal((5, 5)).astype(np.float32)
    out = np.empty_like(x)
    fns = {"fastconv": lambda: fn.convolve(x, w, output=out, mode="reflect")}
    cv2 = _cv2()
    if cv2 is not None:
        dst = np.empty_like(x)
        wf = np.ascontiguousarray(w[::-1, ::-1])   # filter2D correlates
        fns["cv2"] = lambda: cv2.filter2D(x, -1, wf, dst=dst, borderType=cv2.BORDER_REFLECT)
    sout = np.empty_like(x)
    fns["scipy"] = lambda: sn.convolve(x, w, output=sout, mode="reflect")
    return fns


def _gaussian3d():
    import scipy.ndimage as sn
    from .. import ndimage as fn
    x = _image((128, 128, 128))
    out = np.empty_like(x)
    sout = np.empty_like(x)
    return {"fastconv": lambda: fn.gaussian_filter(x, 2.0, output=out),
            "scipy": lambda: sn.gaussian_filter(x, 2.0, output=sout)}


CASES = [
    Case("ndimage", "gaussian_filter sigma=1 2048^2", _gaussian(1.0), {"cv2": 1.0, "scipy": 5.0}),
    Case("ndimage", "gaussian_filter sigma=3 2048^2", _gaussian(3.0), {"cv2": 1.0, "scipy": 5.0}),
    Case("ndimage", "gaussian_filter sigma=8 2048^2", _gaussian(8.0), {"cv2": 1.0, "scipy": 5.0}),
    Case("ndimage", "sobel axis=-1 2048^2", _sobel(), {"cv2": 1.0}),
    Case("ndimage", "uniform_filter size=3 2048^2", _uniform(3), {"cv2": 1.0}),
    Case("ndimage", "uniform_filter size=31 2048^2", _uniform(31), {"cv2": 1.0}),
    Case("ndimage", "gaussian_filter sigma=1 2048^2 f64", _gaussian(1.0, np.float64),
         {"cv2": 1.0, "scipy": 5.0}),
    Case("ndimage", "sobel axis=-1 2048^2 f64", _sobel(np.float64), {"cv2": 1.0}),
    Case("ndimage", "uniform_filter size=3 2048^2 f64", _uniform(3, np.float64), {"cv2": 1.0}),
    Case("ndimage", "convolve 5x5 reflect 2048^2", _convolve5, {"cv2": 1.0}),
    Case("ndimage", "gaussian_filter sigma=2 128^3", _gaussian3d, {"scipy": 3.0}),
]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="repeat 3")
    parser.add_argument("-k", default="", help="only cases whose name contains this")
    args = parser.parse_args(argv)
    cases = [c for c in CASES if args.k in c.name]
    results = run_cases(cases, threads=args.threads, repeat=3 if args.quick else args.repeat)
    print(format_table(results))
    print("first calls (JIT compile included), fastconv: " + ", ".join(
        f"{r.case.name.replace(' 2048^2', '')} {r.first_call_s['fastconv'] * 1e3:.0f} ms"
        for r in results))


if __name__ == "__main__":
    main()
