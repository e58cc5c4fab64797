"""Steady-state latency on small inputs: the public call path, end to end, against the
peers a user would otherwise call (issue 15).

Unlike ``cases_direct`` (which calls the launcher), the fastconv side here is the public
``fastconv.convolve(x, w, mode)`` with ``method="auto"``: validation, the tuner's memo,
the dispatcher and the launcher are all in the time. ``fastconv.plan`` is listed as a
contender too (a plan made once, called on the same data). Peers, all computing the same
'same' (2-D) or 'full' (1-D) convolution with a zero fill:

* ``np.convolve`` (1-D), ``scipy.ndimage.convolve``/``convolve1d`` (mode='constant'),
* ``cv2.filter2D`` with the flipped kernel, anchor (k//2, k//2), BORDER_CONSTANT,
* torch ``conv1d``/``conv2d`` on (1, 1, ...) tensors with the flipped kernel (torch
  correlates) and ``padding='same'`` / ``k - 1``.

Goals are the issue's: 1-D 1,000 x 5 ('same', 'full', 'valid') within 2x np.convolve;
64^2 and 128^2 with 3x3
within 2x cv2.filter2D; from 256^2 on, 3x3 to 9x9 at least as fast as cv2.filter2D.
JIT compile time is excluded (every contender is called once before timing).

Run: ``python -m fastconv bench --group latency``.
"""
from __future__ import annotations

import numpy as np

from ._harness import Case

DTYPES = ("float32", "float64")


def _flip(w):
    return np.ascontiguousarray(w[(slice(None, None, -1),) * w.ndim])


def _torch():
    try:
        import torch
        return torch
    except ImportError:
        return None


def _signal_case(n, k, dtype, mode="full"):
    def make():
        import scipy.ndimage
        import fastconv
        rng = np.random.default_rng(k)
        x = rng.standard_normal(n).astype(dtype)
        w = rng.standard_normal(k).astype(dtype)
        p = fastconv.plan(x, w, mode)
        fns = {"fastconv": lambda: fastconv.convolve(x, w, mode),
               "fastconv.plan": lambda: p(x),
               "np.convolve": lambda: np.convolve(x, w, mode)}
        if mode == "same" and k % 2:       # (scipy.ndimage centres odd kernels alike)
            fns["ndimage.convolve1d"] = lambda: scipy.ndimage.convolve1d(x, w,
                                                                       mode="constant")
        torch = _torch()
        if torch is not None and mode != "same":
            tx = torch.from_numpy(x).reshape(1, 1, n)
            tw = torch.from_numpy(_flip(w)).reshape(1, 1, k)
            pad = k - 1 if mode == "full" else 0
            fns["torch.conv1d"] = lambda: torch.nn.functional.conv1d(tx, tw, padding=pad)
        return fns

    return Case("latency", f"{n} {dtype[5:]}b {mode} {k} taps", make,
                {"np.convolve": 0.5}, min_time=0.005)


def _image_case(n, k, dtype):
    def make():
        import scipy.ndimage
        import fastconv
        rng = np.random.default_rng(k)
        x = rng.standard_normal((n, n)).astype(dtype)
        w = rng.standard_normal((k, k)).astype(dtype)
        wc = _flip(w)
        p = fastconv.plan(x, w, "same")
        fns = {"fastconv": lambda: fastconv.convolve(x, w, "same"),
               "fastconv.plan": lambda: p(x),
               "ndimage.convolve": lambda: scipy.ndimage.convolve(x, w, mode="constant")}
        try:
            import cv2
            fns["cv2.filter2D"] = lambda: cv2.filter2D(
                x, -1, wc, anchor=(k // 2, k // 2), borderType=cv2.BORDER_CONSTANT)
        except ImportError:
            pass
        torch = _torch()
        if torch is not None:
            tx = torch.from_numpy(x).reshape(1, 1, n, n)
            tw = torch.from_numpy(wc).reshape(1, 1, k, k)
            fns["torch.conv2d"] = lambda: torch.nn.functional.conv2d(tx, tw, padding="same")
        return fns

    goal = 0.5 if n <= 128 else 1.0
    return Case("latency", f"{n}x{n} {dtype[5:]}b same {k}x{k}", make,
                {"cv2.filter2D": goal}, min_time=0.005)


CASES = (
    [_signal_case(1000, 5, dt, mode) for dt in DTYPES for mode in ("same", "full", "valid")]
    + [_image_case(n, 3, dt) for dt in DTYPES for n in (64, 128)]
    + [_image_case(n, k, dt) for dt in DTYPES for n in (256, 512) for k in (3, 5, 7, 9)]
)
