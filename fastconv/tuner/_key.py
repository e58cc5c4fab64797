"""What a tuning key holds, and the machine fingerprint that names the cache file.

A key identifies everything that changes which method is fastest for one call: the
operation, shapes, compute dtype, mode/window, boundary, memory layout, thread count,
device and the scipy.fft backend of the FFT methods. What the machine is (CPU, ISA, cores, threading layer, versions) goes into the
fingerprint instead: one cache file per fingerprint, so results never cross machines.
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
from functools import lru_cache

import numpy as np

from .. import _config, _fftsize

SCHEMA = 1


def layout(a) -> str:
    if isinstance(a, np.ndarray):
        flags = a.flags
        if flags.c_contiguous:
            return "C"
        if flags.f_contiguous:
            return "F"
        return "S"          # strided view
    # numba device arrays (the GPU path) answer through methods
    if a.is_c_contiguous():
        return "C"
    if a.is_f_contiguous():
        return "F"
    return "S"


def _dims(shape) -> str:
    return "x".join(str(int(n)) for n in shape) or "scalar"


def device_tag(device: str) -> str:
    """The device part of a key: "cpu" (the machine is in the fingerprint), or for a GPU
    its name, compute capability, driver, runtime and numba-cuda/CuPy versions, so that a
    result measured on one GPU or software stack is never served on another."""
    if device == "cpu":
        return "cpu"
    return _device_tag(device)


@lru_cache(maxsize=8)
def _device_tag(device):
    from ..kernels import device_facts
    f = device_facts(device)
    parts = [device, f.get("name", "?"), "cc" + str(f.get("cc", "?")),
             "drv" + str(f.get("driver", "")), "rt" + str(f.get("runtime", "")),
             "nbc" + str(f.get("numba_cuda", "")), "cupy" + str(f.get("cupy", "-"))]
    return ":".join(p.replace("|", "/").replace(":", "/") for p in parts)


def make_key(spec, x_layout: str = "C", threads: int | None = None,
             device: str = "cpu") -> str:
    """A stable, human-readable string; equal specs give equal keys across processes."""
    threads = _config._numba().get_num_threads() if threads is None else threads
    parts = [
        spec.op,
        f"x={_dims(spec.x_shape)}",
        f"w={_dims(spec.w_shape)}",
        f"out={_dims(spec.out_shape)}",
        "start=" + ",".join(str(int(s)) for s in spec.start),
        np.dtype(spec.compute_dtype).name,
        spec.mode,
        spec.boundary,
        x_layout,
        f"t{threads}",
        device_tag(device),
        # the scipy.fft backend the FFT methods run on: its timings are its own
        "fft=" + _fftsize.fft_backend_name(len(spec.w_shape)),
    ]
    return "|".join(parts)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _isa() -> list:
    try:
        import llvmlite.binding as llvm
        features = llvm.get_host_cpu_features()
        wanted = ("avx", "avx2", "fma", "avx512f", "avx512dq", "avx512bw", "avx512vl",
                  "neon", "sve", "asimd")
        return sorted(f for f in wanted if features.get(f, False))
    except Exception:
        return []


def requested_threading_layer() -> str:
    # What _jit asked for when it loaded, not numba.threading_layer(): that one is only known
    # after the first parallel call, and the fingerprint must not change mid-process.
    from .._jit import REQUESTED_LAYER
    return REQUESTED_LAYER


def _kernels_digest() -> str:
    """A hash of the kernel sources: timings measured with other kernels (an edited
    checkout, a development install whose version did not move) are not reused."""
    root = os.path.join(os.path.dirname(os.path.dirname(__file__)), "kernels")
    h = hashlib.sha1()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            if name.endswith(".py"):
                with open(os.path.join(dirpath, name), "rb") as f:
                    h.update(name.encode() + b"\0" + f.read())
    return h.hexdigest()[:12]


@lru_cache(maxsize=1)
def fingerprint() -> dict:
    from .. import __version__
    numba = _config._numba()
    try:
        cpu_name = numba.config.CPU_NAME or __import__("llvmlite.binding", fromlist=["x"]).get_host_cpu_name()
    except Exception:
        cpu_name = "unknown"
    return {
        "schema": SCHEMA,
        "fastconv": __version__,
        "kernels": _kernels_digest(),
        "numba": numba.__version__,
        "numpy": np.__version__,
        "machine": platform.machine(),
        "cpu": _cpu_model(),
        "llvm_cpu": cpu_name,
        "isa": _isa(),
        "cores": os.cpu_count(),
        "max_threads": numba.config.NUMBA_NUM_THREADS,
        "threading_layer": requested_threading_layer(),
    }


def fingerprint_id(fp: dict | None = None) -> str:
    fp = fingerprint() if fp is None else fp
    blob = json.dumps(fp, sort_keys=True).encode()
    return hashlib.sha1(blob).hexdigest()[:16]
