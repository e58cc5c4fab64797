"""The peers, timed in the same run as fastconv (a parameter, skipped where absent)."""
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


class ConvLayer:
    params = (["fastconv", "torch"],)
    param_names = ["library"]
    number = 1
    repeat = (3, 7, 30.0)

    def setup(self, library):
        set_threads()
        r = rng(4)
        self.x = r.standard_normal((8, 64, 56, 56)).astype(np.float32)
        self.w = r.standard_normal((64, 64, 3, 3)).astype(np.float32)
        if library == "torch":
            torch = require("torch")
            torch.set_num_threads(2)
            tx, tw = torch.from_numpy(self.x), torch.from_numpy(self.w)
            self.fn = lambda: torch.nn.functional.conv2d(tx, tw, padding=1)
        else:
            nn = require("fastconv.nn")
            self.fn = lambda: nn.conv2d(self.x, self.w, padding=1)
        self.fn()

    def time_conv2d(self, library):
        self.fn()
