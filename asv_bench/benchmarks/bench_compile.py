"""First-call time in a fresh process (JIT compile, or load from numba's on-disk cache)."""
import os
import subprocess
import sys
import tempfile

SNIPPET = """
import time, numpy as np
t0 = time.perf_counter()
import fastconv
x = np.ones((64, 64), np.{dtype}); w = np.ones((5, 5), np.{dtype})
fastconv.convolve(x, w, 'same', method='direct')
print(time.perf_counter() - t0)
"""


def _first_call(dtype, cache_dir):
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    out = subprocess.run([sys.executable, "-c", SNIPPET.format(dtype=dtype)], env=env,
                         capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


class FirstCall:
    timeout = 300
    params = (["float32", "float64"],)
    param_names = ["dtype"]

    def track_cold(self, dtype):
        return _first_call(dtype, tempfile.mkdtemp(prefix="numba-cold-"))
    track_cold.unit = "seconds"

    def track_warm_disk_cache(self, dtype):
        d = tempfile.mkdtemp(prefix="numba-warm-")
        _first_call(dtype, d)
        return _first_call(dtype, d)
    track_warm_disk_cache.unit = "seconds"
