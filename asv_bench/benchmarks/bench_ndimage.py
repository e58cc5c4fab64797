"""fastconv.ndimage filters against scipy.ndimage and OpenCV (2 threads, float32 and
float64)."""
import numpy as np
import scipy.ndimage as ndi

from ._common import require, rng, set_threads


class Filters2D:
    params = (["fastconv", "scipy", "cv2"],
              ["gaussian s1", "gaussian s3", "sobel", "uniform 3", "uniform 31"],
              ["float32", "float64"])
    param_names = ["library", "filter", "dtype"]
    number = 1
    repeat = (3, 7, 30.0)

    def setup(self, library, filt, dtype):
        set_threads()
        x = rng().standard_normal((2048, 2048)).astype(dtype)
        self.x = x
        if library == "fastconv":
            f = require("fastconv.ndimage")
        elif library == "scipy":
            f = ndi
        else:
            cv2 = require("cv2")
            b = cv2.BORDER_REFLECT      # scipy.ndimage 'reflect'
            self.fn = {
                "gaussian s1": lambda: cv2.GaussianBlur(x, (0, 0), 1, borderType=b),
                "gaussian s3": lambda: cv2.GaussianBlur(x, (0, 0), 3, borderType=b),
                "sobel": lambda: cv2.Sobel(x, -1, 1, 0, ksize=3, borderType=b),
                "uniform 3": lambda: cv2.blur(x, (3, 3), borderType=b),
                "uniform 31": lambda: cv2.blur(x, (31, 31), borderType=b),
            }[filt]
            self.fn()
            return
        self.fn = {
            "gaussian s1": lambda: f.gaussian_filter(x, 1.0),
            "gaussian s3": lambda: f.gaussian_filter(x, 3.0),
            "sobel": lambda: f.sobel(x, axis=1),
            "uniform 3": lambda: f.uniform_filter(x, 3),
            "uniform 31": lambda: f.uniform_filter(x, 31),
        }[filt]
        self.fn()

    def time_filter(self, library, filt, dtype):
        self.fn()


class Gaussian3D:
    params = (["fastconv", "scipy"],)
    param_names = ["library"]
    number = 1

    def setup(self, library):
        set_threads()
        self.x = rng(5).standard_normal((128, 128, 128)).astype(np.float32)
        f = require("fastconv.ndimage") if library == "fastconv" else ndi
        self.fn = lambda: f.gaussian_filter(self.x, 2.0)
        self.fn()

    def time_gaussian(self, library):
        self.fn()
