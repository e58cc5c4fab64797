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

First calls (``--compile``): :func:`first_calls` times, per public entry point and dtype,
``import numpy, fastconv`` plus one call in a new process, the median of ``n`` processes:

* cold: an empty numba cache and fastconv cache folder per process (the first-call tier
  serves; its background compile is stopped when the call returns, so that it does not
  load the next process);
* warm: a shared cache folder primed first by one process that made the call and waited
  for its background compile (the class recorded, its kernels on disk).

Goals (issue 15): cold <= 1 s, warm <= 0.3 s, import included.

Run: ``python -m fastconv bench --group latency`` (steady state);
``python -m fastconv bench --group latency --compile`` adds the first calls.
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile

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


# -- first calls in new processes ------------------------------------------------------------

# The call per entry point: 1024^2 images, a 5x5 kernel, sigma 2, size 5; 1-D: 1000 x 5;
# conv2d: 16 -> 16 channels 3x3 on 56^2.
FIRST_CALL_ENTRIES = {
    "convolve": "fastconv.convolve(img, k5, 'same')",
    "correlate": "fastconv.correlate(img, k5, 'same')",
    "convolve 1-D 1000x5": "fastconv.convolve(sig, k5[0])",
    "convolve2d symm": "fastconv.convolve2d(img, k5, 'same', boundary='symm')",
    "ndimage.convolve": "fastconv.ndimage.convolve(img, k5)",
    "ndimage.correlate": "fastconv.ndimage.correlate(img, k5)",
    "gaussian_filter": "fastconv.ndimage.gaussian_filter(img, 2.0)",
    "uniform_filter": "fastconv.ndimage.uniform_filter(img, 5)",
    "sobel": "fastconv.ndimage.sobel(img)",
    "fftconvolve": "fastconv.fftconvolve(img, k5, 'same')",
    "oaconvolve": "fastconv.oaconvolve(img, k5, 'same')",
    "nn.conv2d": "fastconv.nn.conv2d(act, wl, padding=1)",
}

_PROBE = r"""
import json, sys, time
t0 = time.perf_counter()
import numpy as np
import fastconv
t1 = time.perf_counter()
from fastconv import _firstcall
dt, call, prime = sys.argv[1], sys.argv[2], sys.argv[3] == "prime"
rng = np.random.default_rng(0)
img = rng.standard_normal((1024, 1024)).astype(dt)
k5 = rng.standard_normal((5, 5)).astype(dt)
sig = rng.standard_normal(1000).astype(dt)
act = rng.standard_normal((1, 16, 56, 56)).astype(dt)
wl = rng.standard_normal((16, 16, 3, 3)).astype(dt)
t2 = time.perf_counter()
eval(call)
t3 = time.perf_counter()
if prime:
    _firstcall.wait()
    eval(call)
    _firstcall.wait()
elif _firstcall._PROC is not None:      # cold: stop the background compile
    _firstcall._PROC.kill()
print(json.dumps({"import": t1 - t0, "call": t3 - t2}))
"""


def _probe(env, dtype, call, prime=False) -> dict:
    proc = subprocess.run([sys.executable, "-c", _PROBE, dtype, call,
                           "prime" if prime else "time"], env=env, capture_output=True,
                          text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def first_calls(dtypes=DTYPES, n=5, entries=None, progress=None) -> list[dict]:
    """Rows ``{"entry", "dtype", "cold", "warm", "cold_import", "warm_import"}``: medians
    of ``n`` new processes, seconds, import of numpy and fastconv included."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    base = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [root] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    base.pop("FASTCONV_FIRST_CALL", None)        # the user's default: the tier
    entries = entries or list(FIRST_CALL_ENTRIES)
    rows = []
    with tempfile.TemporaryDirectory(prefix="fastconv-first-calls-") as top:
        warm = os.path.join(top, "warm")
        todo = [(e, dt) for e in entries for dt in dtypes]
        for i, (entry, dt) in enumerate(todo):
            if progress:
                progress(i, len(todo), f"first call {entry} {dt}")
            call = FIRST_CALL_ENTRIES[entry]
            row = {"entry": entry, "dtype": dt}
            for label in ("cold", "warm"):
                totals, imports = [], []
                if label == "warm":
                    env = dict(base, NUMBA_CACHE_DIR=warm, FASTCONV_CACHE_DIR=warm)
                    _probe(env, dt, call, prime=True)
                for _ in range(n):
                    if label == "cold":
                        d = tempfile.mkdtemp(dir=top)
                        env = dict(base, NUMBA_CACHE_DIR=d, FASTCONV_CACHE_DIR=d)
                    r = _probe(env, dt, call)
                    totals.append(r["import"] + r["call"])
                    imports.append(r["import"])
                row[label] = statistics.median(totals)
                row[label + "_import"] = statistics.median(imports)
            rows.append(row)
    return rows


def format_first_calls(rows, n=5) -> str:
    lines = [f"first calls: import numpy + fastconv + one call, new process, median of {n}; "
             f"load average {os.getloadavg()[0]:.1f}",
             f"{'entry point':<22} {'dtype':<8} {'cold s':>7} {'(import)':>9} "
             f"{'warm s':>7} {'(import)':>9}  goals: cold <= 1 s, warm <= 0.3 s"]
    for r in rows:
        ok = ("met" if r["cold"] <= 1.0 and r["warm"] <= 0.3 else "MISSED")
        lines.append(f"{r['entry']:<22} {r['dtype']:<8} {r['cold']:7.3f} "
                     f"{r['cold_import']:9.3f} {r['warm']:7.3f} {r['warm_import']:9.3f}  {ok}")
    return "\n".join(lines)
