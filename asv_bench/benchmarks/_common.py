"""Shared set-up for the asv suite: fixed seeds, 2 threads for every contender, and the
tuner pointed at a private temporary cache (except in the auto suite)."""
import os
import tempfile

os.environ.setdefault("FASTCONV_CACHE_DIR", tempfile.mkdtemp(prefix="fastconv-asv-"))

import numpy as np  # noqa: E402

from fastconv import _config  # noqa: E402

# Timings are of the compiled kernels: no first call runs the no-compile tier
# (fastconv/_firstcall.py; bench_compile measures first calls in fresh processes).
_config.set_first_call("compile")

THREADS = 2


def rng(seed=0):
    return np.random.default_rng(seed)


def set_threads(n=THREADS):
    import numba
    numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    try:
        import cv2
        cv2.setNumThreads(n)
    except ImportError:
        pass


def require(module):
    """Import an optional peer or fastconv module, or skip the benchmark."""
    import importlib
    try:
        return importlib.import_module(module)
    except ImportError:
        raise NotImplementedError(f"{module} is not installed")
