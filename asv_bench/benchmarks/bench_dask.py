"""The Dask engine against dask-image on the same LocalCluster (2 worker processes x 1
thread) and chunks: 2048^2 float32 in 512^2 chunks, persisted in the workers; each timed
call builds the lazy result and persists it in the workers. Skipped (NotImplementedError)
where dask, distributed or dask-image is absent."""
from ._common import require


class DaskFilters:
    params = (["fastconv", "dask-image"], ["gaussian", "convolve5", "convolve63"])
    param_names = ["library", "filter"]
    number = 1
    repeat = (2, 5, 60.0)
    timeout = 300

    def setup(self, library, filt):
        require("dask.array")
        require("distributed")
        if library == "dask-image":
            require("dask_image.ndfilters")
        cases = require("fastconv.bench.cases_dask")
        c = cases.client(2)
        x = cases.data(c, 2048, 512)
        self.fn = cases.contenders(c, x, filt)[library]
        self.fn()                       # JIT compile and worker warm-up excluded

    def time_filter(self, library, filt):
        self.fn()
