"""fastconv's CUDA kernels against cupyx and torch/cuDNN (float32, CuPy arrays).

Skipped (NotImplementedError in setup) without a GPU, CuPy or the CUDA extra, and under
numba's simulator. Times are synchronised: each call ends with the device's queue drained,
so asv's wall clock sees the kernels (CUDA-event timings: ``python -m fastconv bench
--device cuda``)."""
import numpy as np

from ._common import require


def _gpu():
    require("cupy")
    from fastconv.bench import cases_cuda
    why = cases_cuda.why_not()
    if why is not None:
        raise NotImplementedError(why)
    import cupy
    return cupy


class CudaDirect:
    params = (["fastconv", "cupyx"], [3, 5, 9])
    param_names = ["library", "k"]
    number = 5
    repeat = (3, 7, 20.0)

    def setup(self, library, k):
        cupy = _gpu()
        x = cupy.random.default_rng(0).standard_normal((4096, 4096), dtype=cupy.float32)
        w = np.random.default_rng(1).standard_normal((k, k)).astype(np.float32)
        if library == "fastconv":
            import fastconv
            call = lambda: fastconv.convolve(x, w, "same", method="direct")  # noqa: E731
        else:
            import cupyx.scipy.ndimage as cnd
            wd = cupy.asarray(w)
            call = lambda: cnd.convolve(x, wd, mode="constant")  # noqa: E731
        sync = cupy.cuda.Device().synchronize
        self.fn = lambda: (call(), sync())
        self.fn()

    def time_direct(self, library, k):
        self.fn()


class CudaGaussian:
    params = (["fastconv", "cupyx"], [1.0, 4.0])
    param_names = ["library", "sigma"]
    number = 5
    repeat = (3, 7, 20.0)

    def setup(self, library, sigma):
        cupy = _gpu()
        x = cupy.random.default_rng(0).standard_normal((4096, 4096), dtype=cupy.float32)
        if library == "fastconv":
            import fastconv.ndimage as f
        else:
            import cupyx.scipy.ndimage as f
        sync = cupy.cuda.Device().synchronize
        self.fn = lambda: (f.gaussian_filter(x, sigma), sync())
        self.fn()

    def time_gaussian(self, library, sigma):
        self.fn()


class CudaFFT:
    params = (["fastconv", "cupyx"], [31, 63])
    param_names = ["library", "k"]
    number = 3
    repeat = (3, 7, 20.0)

    def setup(self, library, k):
        cupy = _gpu()
        x = cupy.random.default_rng(0).standard_normal((2048, 2048), dtype=cupy.float32)
        w = np.random.default_rng(1).standard_normal((k, k)).astype(np.float32)
        if library == "fastconv":
            import fastconv
            call = lambda: fastconv.fftconvolve(x, w, "same")  # noqa: E731
        else:
            import cupyx.scipy.signal as csig
            wd = cupy.asarray(w)
            call = lambda: csig.fftconvolve(x, wd, "same")  # noqa: E731
        sync = cupy.cuda.Device().synchronize
        self.fn = lambda: (call(), sync())
        self.fn()

    def time_fft(self, library, k):
        self.fn()
