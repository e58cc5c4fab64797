"""FFT, overlap-add and separable methods."""
import numpy as np

import fastconv

from ._common import rng, set_threads


class FFT2D:
    params = (["fft", "oa"], [31, 63])
    param_names = ["method", "kernel"]
    number = 1
    repeat = (3, 7, 30.0)

    def setup(self, method, kernel):
        set_threads()
        r = rng()
        self.x = r.standard_normal((1024, 1024)).astype(np.float32)
        self.w = r.standard_normal((kernel, kernel)).astype(np.float32)
        try:
            fastconv.convolve(self.x, self.w, "same", method=method)
        except ValueError as exc:          # method not in this commit
            raise NotImplementedError(str(exc))

    def time_same(self, method, kernel):
        fastconv.convolve(self.x, self.w, "same", method=method)


class OA1D:
    params = ([255, 1023, 4095],)
    param_names = ["taps"]

    def setup(self, taps):
        set_threads()
        r = rng(1)
        self.x = r.standard_normal(1_000_000).astype(np.float32)
        self.w = r.standard_normal(taps).astype(np.float32)
        try:
            fastconv.convolve(self.x, self.w, "same", method="oa")
        except ValueError as exc:
            raise NotImplementedError(str(exc))

    def time_same(self, taps):
        fastconv.convolve(self.x, self.w, "same", method="oa")


class Separable:
    params = ([5, 19, 31],)
    param_names = ["taps"]

    def setup(self, taps):
        set_threads()
        g = np.exp(-0.5 * ((np.arange(taps) - taps // 2) / (taps / 6)) ** 2)
        self.w = np.outer(g, g).astype(np.float32)
        self.x = rng(3).standard_normal((2048, 2048)).astype(np.float32)
        try:
            fastconv.convolve(self.x, self.w, "same", method="separable")
        except ValueError as exc:
            raise NotImplementedError(str(exc))

    def time_same(self, taps):
        fastconv.convolve(self.x, self.w, "same", method="separable")
