"""Conv layers of real networks (fastconv/bench/cases_layers.py): every family of the
layers suite, forward, input gradient, weight gradient and transposed, batch 1 and 8,
fastconv against torch (CPU build, 2 threads, float32), and fastconv's peak extra memory
per call (tracemalloc: NumPy buffers beyond the inputs and the output)."""
from ._common import require, set_threads


def _points():
    from fastconv.bench import cases_layers
    return {f"{p[1]} {p[2]} N{p[3]}": p for p in cases_layers.points()}


try:
    _NAMES = sorted(_points())
except ImportError:          # fastconv not importable at discovery: no parameters
    _NAMES = []


class Layers:
    params = (["fastconv", "torch"], _NAMES)
    param_names = ["library", "case"]
    number = 1
    repeat = (3, 5, 60.0)
    timeout = 600

    def setup(self, library, case):
        set_threads()
        from fastconv.bench import cases_layers
        fam, name, op, b, nd, xs, ws, stride, padding, groups = _points()[case]
        if library == "torch":
            torch = require("torch")
            torch.set_num_threads(2)
        fns = cases_layers._calls(op, nd, b, xs, ws, stride, padding, groups)
        if library not in fns:
            raise NotImplementedError(f"{library} is not installed")
        self.fn = fns[library]
        self.fn()

    def time_layer(self, library, case):
        self.fn()


class LayersMemory:
    params = (_NAMES,)
    param_names = ["case"]
    timeout = 600

    def setup(self, case):
        set_threads()

    def track_peak_extra_mib(self, case):
        from fastconv.bench import cases_layers
        extra, _ = cases_layers.peak_extra_bytes(_points()[case])
        return extra / 2**20

    track_peak_extra_mib.unit = "MiB"
