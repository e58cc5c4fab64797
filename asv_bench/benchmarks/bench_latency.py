"""Steady-state latency on small inputs (issue 15): the public call and a plan against
the peers a user would otherwise call, in the same run. JIT compile is done in setup."""
import numpy as np
import scipy.ndimage

import fastconv

from ._common import require, rng, set_threads


class SmallSignal:
    params = (["fastconv", "fastconv.plan", "np.convolve"], ["same", "full", "valid"],
              ["float32", "float64"])
    param_names = ["library", "mode", "dtype"]
    number = 200
    repeat = (5, 11, 10.0)

    def setup(self, library, mode, dtype):
        set_threads()
        r = rng(3)
        x = r.standard_normal(1000).astype(dtype)
        w = r.standard_normal(5).astype(dtype)
        if library == "fastconv":
            self.fn = lambda: fastconv.convolve(x, w, mode)
        elif library == "fastconv.plan":
            p = fastconv.plan(x, w, mode)
            self.fn = lambda: p(x)
        else:
            self.fn = lambda: np.convolve(x, w, mode)
        self.fn()

    def time_5_taps(self, library, mode, dtype):
        self.fn()


class SmallImage:
    params = (["fastconv", "fastconv.plan", "cv2.filter2D", "scipy.ndimage"],
              [64, 128, 256, 512], [3, 5, 7, 9], ["float32", "float64"])
    param_names = ["library", "size", "kernel", "dtype"]
    number = 20
    repeat = (5, 11, 10.0)

    def setup(self, library, size, kernel, dtype):
        set_threads()
        r = rng(4)
        x = r.standard_normal((size, size)).astype(dtype)
        w = r.standard_normal((kernel, kernel)).astype(dtype)
        if library == "fastconv":
            self.fn = lambda: fastconv.convolve(x, w, "same")
        elif library == "fastconv.plan":
            p = fastconv.plan(x, w, "same")
            self.fn = lambda: p(x)
        elif library == "cv2.filter2D":
            cv2 = require("cv2")
            flipped = np.ascontiguousarray(w[::-1, ::-1])
            self.fn = lambda: cv2.filter2D(x, -1, flipped, anchor=(kernel // 2, kernel // 2),
                                           borderType=cv2.BORDER_CONSTANT)
        else:
            self.fn = lambda: scipy.ndimage.convolve(x, w, mode="constant")
        self.fn()

    def time_same(self, library, size, kernel, dtype):
        self.fn()
