"""Interference: small and medium calls alone, beside a second process that runs large
FFT-method calls in a loop, and right after an FFT call in the same process (issue 15,
item 5; docs/guide/threads.md has the measurements and the choice they led to).

    python -m fastconv.bench.interference [--seconds S] [--rounds R]

Prints, per call, the median and 90th percentile in microseconds over S seconds of calls
(one call every 0.5 ms) for each condition, R rounds. Set OMP_WAIT_POLICY or
GOMP_SPINCOUNT in the environment to compare wait policies (both processes inherit it).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

from .. import _config


def _calls():
    import fastconv
    rng = np.random.default_rng(0)
    s1 = rng.standard_normal(1000).astype(np.float32)
    k5 = rng.standard_normal(5).astype(np.float32)
    i256 = rng.standard_normal((256, 256)).astype(np.float32)
    k3 = rng.standard_normal((3, 3)).astype(np.float32)
    i512 = rng.standard_normal((512, 512)).astype(np.float32)
    k55 = rng.standard_normal((5, 5)).astype(np.float32)
    return {"1-D 1000 x 5": lambda: fastconv.convolve(s1, k5, "same"),
            "256^2 3x3": lambda: fastconv.convolve(i256, k3, "same"),
            "512^2 5x5": lambda: fastconv.convolve(i512, k55, "same")}


def _fft_call(n):
    import fastconv
    rng = np.random.default_rng(1)
    x = rng.standard_normal((n, n)).astype(np.float32)
    k = rng.standard_normal((31, 31)).astype(np.float32)
    return lambda: fastconv.convolve(x, k, "same", method="fft")


def probe(seconds):
    """{call: (median us, p90 us)} over ``seconds`` of calls each."""
    res = {}
    for name, f in _calls().items():
        f()
        f()
        ts = []
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            t0 = time.perf_counter()
            f()
            ts.append(time.perf_counter() - t0)
            time.sleep(0.0005)
        ts = np.array(ts) * 1e6
        res[name] = (float(np.median(ts)), float(np.percentile(ts, 90)))
    return res


def after_fft(reps=30):
    """{call: (steady median us, median us right after a 1024^2 FFT-method call)}."""
    fft = _fft_call(1024)
    fft()
    out = {}
    for name, f in _calls().items():
        f()
        f()
        steady, after = [], []
        for _ in range(reps):
            f()
            t0 = time.perf_counter()
            f()
            steady.append(time.perf_counter() - t0)
            fft()
            t0 = time.perf_counter()
            f()
            after.append(time.perf_counter() - t0)
        out[name] = (float(np.median(steady) * 1e6), float(np.median(after) * 1e6))
    return out


def _background(ready):
    f = _fft_call(2048)
    f()
    with open(ready, "w") as fh:
        fh.write("ready")
    while True:
        f()


def _fmt(res):
    return "  ".join(f"{k}: {a:.0f}/{b:.0f}" for k, (a, b) in res.items())


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=1.0)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--child", choices=["background", "probe"], help=argparse.SUPPRESS)
    p.add_argument("--ready", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    _config.set_first_call("compile")
    if args.child == "background":
        _background(args.ready)
        return 0
    if args.child == "probe":
        print(json.dumps(probe(args.seconds)))
        return 0
    me = [sys.executable, "-m", "fastconv.bench.interference", "--seconds", str(args.seconds)]
    print("us, median/p90 (after FFT: steady/after)")
    for r in range(args.rounds):
        alone = json.loads(subprocess.run(me + ["--child", "probe"], capture_output=True,
                                          text=True, check=True).stdout)
        with tempfile.TemporaryDirectory() as d:
            ready = os.path.join(d, "ready")
            bg = subprocess.Popen(me + ["--child", "background", "--ready", ready])
            try:
                while not os.path.exists(ready):
                    time.sleep(0.1)
                beside = json.loads(subprocess.run(me + ["--child", "probe"],
                                                   capture_output=True, text=True,
                                                   check=True).stdout)
            finally:
                bg.kill()
                bg.wait()
        print(f"round {r + 1} alone:        {_fmt(alone)}")
        print(f"round {r + 1} beside FFTs:  {_fmt(beside)}")
        print(f"round {r + 1} after an FFT: {_fmt(after_fft())}")
    print(f"load average: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
