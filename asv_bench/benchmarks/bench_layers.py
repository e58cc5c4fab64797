"""Conv layers of real networks (fastconv/bench/cases_layers.py): every family of the
layers suite (ResNet, MobileNet/ConvNeXt, wav2vec, video, U-Net), forward, input
gradient, weight gradient and transposed, batch 1 and 8, fastconv against torch (CPU
build, 2 threads, float32): one timing per (family, op, batch) runs each of its layers
once. ``track_peak_extra_mib``: fastconv's largest peak extra memory over those layers
(tracemalloc: NumPy buffers beyond the inputs and the output)."""
from ._common import require, set_threads

FAMILIES = ["resnet", "mobile", "wav2vec", "video", "unet"]
OPS = ["fwd", "dgrad", "wgrad", "tconv"]


def _points(family, op, batch):
    cl = require("fastconv.bench.cases_layers")
    pts = [p for p in cl.points() if p[0] == family and p[2] == op and p[3] == batch]
    if not pts:
        raise NotImplementedError(f"no {op} layers in {family}")
    return cl, pts


class Layers:
    params = (["fastconv", "torch"], FAMILIES, OPS, [1, 8])
    param_names = ["library", "family", "op", "batch"]
    number = 1
    repeat = (3, 5, 120.0)
    timeout = 900

    def setup(self, library, family, op, batch):
        set_threads()
        cl, pts = _points(family, op, batch)
        if library == "torch":
            require("torch").set_num_threads(2)
        self.fns = []
        for fam, name, op_, b, nd, xs, ws, stride, padding, groups in pts:
            fns = cl._calls(op_, nd, b, xs, ws, stride, padding, groups)
            if library not in fns:
                raise NotImplementedError(f"{library} is not installed")
            self.fns.append(fns[library])
        for fn in self.fns:
            fn()

    def time_layers(self, library, family, op, batch):
        for fn in self.fns:
            fn()


class LayersMemory:
    params = (FAMILIES, OPS, [1, 8])
    param_names = ["family", "op", "batch"]
    timeout = 900

    def setup(self, family, op, batch):
        set_threads()
        self.cl, self.pts = _points(family, op, batch)

    def track_peak_extra_mib(self, family, op, batch):
        return max(self.cl.peak_extra_bytes(p)[0] for p in self.pts) / 2**20

    track_peak_extra_mib.unit = "MiB"
