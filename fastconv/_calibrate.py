"""Fits the cost model's constants to this machine (``python -m fastconv tune
--calibrate``): a short micro-benchmark of every method through the dispatcher's execute
step, the fit in ``tuner._model``, the result stored beside the tuning cache."""
from __future__ import annotations

import numpy as np

from . import tuner
from ._dispatch import Decision, execute, prepare_kernel
from ._validate import conv_spec
from .tuner import _model
from .tuner._bench import time_call
from .tuner._store import store

__all__ = ["calibrate"]


def calibrate(progress=None) -> dict:
    """Fit the cost model's constants to this machine from a short micro-benchmark and
    store them. Returns the fitted constants."""
    rng = np.random.default_rng(0)
    samples = []
    cases = [((512, 512), (3, 3)), ((512, 512), (9, 9)), ((1024, 1024), (5, 5)),
             ((512, 512), (17, 17)), ((512, 512), (31, 31)), ((1024, 1024), (15, 15)),
             ((100_000,), (15,)), ((100_000,), (255,)), ((400_000,), (63,)),
             ((400_000,), (1023,)), ((48, 48, 48), (3, 3, 3)), ((48, 48, 48), (7, 7, 7))]
    for i, (xs, ws) in enumerate(cases):
        if progress:
            progress(i, len(cases), f"{xs} * {ws}")
        x = rng.standard_normal(xs).astype(np.float32)
        w = rng.standard_normal(ws).astype(np.float32)
        if len(ws) >= 2:        # a separable kernel, so that every method runs on it
            g = rng.standard_normal(ws[0]).astype(np.float32)
            w = g
            for _ in ws[1:]:
                w = np.multiply.outer(w, g)
        spec = conv_spec("convolve", x, w, "same")
        wk = prepare_kernel(spec, w)
        allowed, _ = tuner.candidates(spec, x, wk)
        for m, p in allowed.items():
            units = _model.work(spec, m, p)
            if m == "direct" and units > 2e9:      # seconds per call: the fit needs no more
                continue
            d = Decision(m, p, "calibrating")
            t, _ = time_call(lambda: execute(spec, x, w, d, wk=wk), 0.2)
            samples.append((f"{m}/{len(xs)}", units, t))
    fitted = _model.fit(samples)
    store().put_model(fitted)
    tuner.clear_cache(memory_only=True)
    return fitted
