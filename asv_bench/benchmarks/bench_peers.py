"""The peers, timed in the same run as fastconv (a parameter, skipped where absent).
Conv layers against torch are in bench_nn.py, filters against OpenCV in bench_ndimage.py."""
import numpy as np
import scipy.ndimage
import scipy.signal

import fastconv

from ._common import require, rng, set_threads


class Image2D:
    params = (["fastconv", "cv2.filter2D", "scipy.ndimage", "scipy.signal.fftconvolve"],
              [3, 9, 31])
    param_names = ["library", "kernel"]
    number = 1
    repeat = (3, 7, 30.0)

    def setup(self, library, kernel):
        set_threads()
        r = rng()
        self.x = r.standard_normal((1024, 1024)).astype(np.float32)
        self.w = r.standard_normal((kernel, kernel)).astype(np.float32)
        if library == "fastconv":
            self.fn = lambda: fastconv.convolve(self.x, self.w, "same")
        elif library == "cv2.filter2D":
            cv2 = require("cv2")
            flipped = np.ascontiguousarray(self.w[::-1, ::-1])
            self.fn = lambda: cv2.filter2D(self.x, -1, flipped,
                                           borderType=cv2.BORDER_CONSTANT)
        elif library == "scipy.ndimage":
            if kernel > 9:
                raise NotImplementedError("too slow to be interesting")
            self.fn = lambda: scipy.ndimage.convolve(self.x, self.w, mode="constant")
        else:
            self.fn = lambda: scipy.signal.fftconvolve(self.x, self.w, "same")
        self.fn()

    def time_same(self, library, kernel):
        self.fn()


class Signal1D:
    params = (["fastconv", "numpy.convolve", "scipy.signal.oaconvolve"], [3, 63, 1023])
    param_names = ["library", "taps"]

    def setup(self, library, taps):
        set_threads()
        r = rng(1)
        self.x = r.standard_normal(1_000_000).astype(np.float32)
        self.w = r.standard_normal(taps).astype(np.float32)
        self.fn = {
            "fastconv": lambda: fastconv.convolve(self.x, self.w, "same"),
            "numpy.convolve": lambda: np.convolve(self.x, self.w, "same"),
            "scipy.signal.oaconvolve": lambda: scipy.signal.oaconvolve(self.x, self.w, "same"),
        }[library]
        self.fn()

    def time_same(self, library, taps):
        self.fn()
