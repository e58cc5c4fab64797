"""Conv layers: fastconv.nn against torch.nn.functional (CPU build, 2 threads, float32)."""
import numpy as np

from ._common import require, rng, set_threads

LAYERS = {
    "N8 C64 56^2 O64 3x3 p1": ((8, 64, 56, 56), (64, 64, 3, 3), dict(padding=1)),
    "N1 C3 224^2 O64 7x7 s2 p3": ((1, 3, 224, 224), (64, 3, 7, 7), dict(stride=2, padding=3)),
    "N8 C256 14^2 O256 3x3 p1": ((8, 256, 14, 14), (256, 256, 3, 3), dict(padding=1)),
    "N1 C1 256^2 O32 16x16": ((1, 1, 256, 256), (32, 1, 16, 16), dict()),
}


def _data(layer):
    xs, ws, kw = LAYERS[layer]
    r = rng(7)
    return r.standard_normal(xs).astype(np.float32), r.standard_normal(ws).astype(np.float32), kw


class Conv2d:
    params = (["fastconv", "torch"], list(LAYERS))
    param_names = ["library", "layer"]
    number = 1
    repeat = (3, 7, 60.0)

    def setup(self, library, layer):
        set_threads()
        x, w, kw = _data(layer)
        if library == "torch":
            torch = require("torch")
            torch.set_num_threads(2)
            tx, tw = torch.from_numpy(x), torch.from_numpy(w)
            self.fn = lambda: torch.nn.functional.conv2d(tx, tw, **kw)
        else:
            nn = require("fastconv.nn")
            self.fn = lambda: nn.conv2d(x, w, **kw)
        self.fn()

    def time_conv2d(self, library, layer):
        self.fn()


class Conv2dMethods:
    """Every conv-layer method on the same layers (a method that does not apply to a
    layer, Winograd off 3x3, is skipped), so a regression in one shows even while auto
    picks another."""
    params = (["direct", "gemm", "fft", "winograd"], list(LAYERS))
    param_names = ["method", "layer"]
    number = 1
    repeat = (3, 7, 60.0)

    def setup(self, method, layer):
        set_threads()
        x, w, kw = _data(layer)
        if method == "winograd" and (w.shape[2:] != (3, 3) or kw.get("stride", 1) != 1):
            raise NotImplementedError("winograd needs 3x3 stride-1 layers")
        nn = require("fastconv.nn")
        self.fn = lambda: nn.conv2d(x, w, method=method, **kw)
        self.fn()

    def time_conv2d(self, method, layer):
        self.fn()
