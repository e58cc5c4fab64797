"""The direct method: 2-D images with small kernels, 1-D signals, 3-D volumes."""
import numpy as np

import fastconv

from ._common import rng, set_threads


class Direct2D:
    params = ([512, 2048], [3, 5, 9], ["float32", "float64"])
    param_names = ["size", "kernel", "dtype"]
    number = 3
    repeat = (3, 10, 20.0)

    def setup(self, size, kernel, dtype):
        set_threads()
        r = rng()
        self.x = r.standard_normal((size, size)).astype(dtype)
        self.w = r.standard_normal((kernel, kernel)).astype(dtype)
        fastconv.convolve(self.x, self.w, "same", method="direct")   # JIT outside timing

    def time_same(self, size, kernel, dtype):
        fastconv.convolve(self.x, self.w, "same", method="direct")


class Direct1D:
    params = ([3, 15, 63],)
    param_names = ["taps"]

    def setup(self, taps):
        set_threads()
        r = rng(1)
        self.x = r.standard_normal(1_000_000).astype(np.float32)
        self.w = r.standard_normal(taps).astype(np.float32)
        fastconv.convolve(self.x, self.w, "same", method="direct")

    def time_same(self, taps):
        fastconv.convolve(self.x, self.w, "same", method="direct")


class Direct3D:
    params = ([3, 5],)
    param_names = ["kernel"]

    def setup(self, kernel):
        set_threads()
        r = rng(2)
        self.x = r.standard_normal((64, 64, 64)).astype(np.float32)
        self.w = r.standard_normal((kernel,) * 3).astype(np.float32)
        fastconv.convolve(self.x, self.w, "same", method="direct")

    def time_same(self, kernel):
        fastconv.convolve(self.x, self.w, "same", method="direct")
