"""The one module that imports numba-cuda.

Every CUDA kernel module and every CUDA-aware part of fastconv reaches the GPU through the
names below, so that a successor to numba-cuda (numba-cuda is in maintenance; its
announced successor is numba-cuda-mlir) replaces this file and nothing else. Importing it
needs numba-cuda (the ``fastconv[cuda]`` extra) but no GPU: kernels are compiled lazily,
at their first launch (or by ``compile_ptx`` in the tests), never at import.

Under Numba's simulator (``NUMBA_ENABLE_CUDASIM=1``, set before numba is first imported)
the same kernels run as Python on the CPU: slow (about 0.75 ms per CUDA thread), untyped,
and with device arrays that expose ``__dlpack__`` but not ``__cuda_array_interface__``.
``SIMULATOR`` tells the launchers, which then use a NumPy stand-in for cuFFT.

Kernel modules write ``from ._backend import cuda, jit`` and call ``cuda.grid(...)``,
``cuda.shared.array(...)`` through that global name ``cuda``: the simulator runs a
kernel by swapping the globals that refer to the ``numba.cuda`` module (``_backend.cuda``
from inside a kernel would not be swapped).
"""
from __future__ import annotations

import contextlib as _contextlib
import contextvars as _contextvars

import numba
from numba import cuda

__all__ = ["cuda", "jit", "SIMULATOR", "available", "is_device_array", "as_device_array",
           "to_device", "device_array", "copy_to_host", "synchronize", "stream_of",
           "grid_1d", "grid_2d", "compile_ptx", "current_stream", "use_stream",
           "launch", "strided_view", "stream_ptr", "to_cupy", "from_cupy",
           "cupy_stream", "device_facts", "time_launches"]

SIMULATOR: bool = bool(numba.config.ENABLE_CUDASIM)

# -- device facts (the tuner's key and GPU cost model; ``python -m fastconv info``) ----------

def device_facts() -> dict:
    """What the current GPU is, for the tuning key (results never cross devices, drivers
    or library versions) and for the GPU cost model (SM count, clocks, memory bus). Under
    the simulator: a fixed description. Attributes the driver does not report are None."""
    facts = {"name": "numba CUDA simulator", "cc": "sim", "driver": "", "runtime": "",
             "sms": None, "clock_khz": None, "mem_clock_khz": None, "bus_bits": None}
    facts.update(_library_versions())
    if SIMULATOR:
        return facts
    dev = cuda.get_current_device()
    name = dev.name
    facts["name"] = name.decode() if isinstance(name, bytes) else str(name)
    facts["cc"] = "%d.%d" % tuple(dev.compute_capability)
    for key, attr in (("sms", "MULTIPROCESSOR_COUNT"), ("clock_khz", "CLOCK_RATE"),
                      ("mem_clock_khz", "MEMORY_CLOCK_RATE"),
                      ("bus_bits", "GLOBAL_MEMORY_BUS_WIDTH")):
        try:
            facts[key] = int(getattr(dev, attr))
        except Exception:          # an attribute this driver no longer reports
            pass
    try:
        facts["driver"] = "%d.%d" % tuple(cuda.cudadrv.driver.get_version())
    except Exception:
        pass
    try:
        facts["runtime"] = "%d.%d" % tuple(cuda.runtime.get_version())
    except Exception:
        pass
    return facts


def _library_versions() -> dict:
    out = {}
    try:
        from numba_cuda import __version__ as v
        out["numba_cuda"] = v
    except ImportError:
        out["numba_cuda"] = "builtin"
    try:
        import importlib.metadata as md
        for dist in ("cupy-cuda13x", "cupy-cuda12x", "cupy"):
            try:
                out["cupy"] = md.version(dist)
                break
            except md.PackageNotFoundError:
                continue
    except Exception:
        pass
    return out


def time_launches(fn, stream=None) -> float:
    """Seconds ``fn()`` keeps the GPU busy, from CUDA events recorded around it on
    ``stream`` (the default stream when None): no host-side launch latency, no
    synchronisation inside the measured interval. The simulator's events report no time
    (-1): there, the wall clock with a synchronisation on both sides."""
    import time
    if SIMULATOR:
        cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        cuda.synchronize()
        return time.perf_counter() - t0
    stream = cuda.default_stream() if stream is None else stream
    start, stop = cuda.event(timing=True), cuda.event(timing=True)
    start.record(stream)
    fn()
    stop.record(stream)
    stop.synchronize()
    return cuda.event_elapsed_time(start, stop) / 1e3


def jit(fn=None, **options):
    """``cuda.jit`` for fastconv's kernels: lazy (no signature, so nothing compiles at
    import and the module imports without a driver) and, for kernels, with numba's disk
    cache on (``cache=True``), so a new process loads compiled kernels instead of paying
    NVVM again; device helpers (``@jit(device=True)``) compile into their callers."""
    if not options.get("device"):
        options.setdefault("cache", True)
    if fn is None:
        return lambda f: cuda.jit(f, **options)
    return cuda.jit(fn, **options)


def available() -> bool:
    """True when kernels can run: a working driver and GPU, or the simulator."""
    try:
        return bool(cuda.is_available())
    except Exception:              # a broken driver install reads as "no GPU"
        return False


def is_device_array(obj) -> bool:
    """True for an array in GPU memory that kernels can take without a copy: anything
    with ``__cuda_array_interface__`` (CuPy, torch CUDA tensors, numba device arrays), or
    the simulator's stand-in device arrays."""
    if SIMULATOR:
        from numba.cuda.simulator.cudadrv.devicearray import FakeCUDAArray
        return isinstance(obj, FakeCUDAArray)
    return bool(cuda.is_cuda_array(obj))


def as_device_array(obj):
    """A numba device-array view of ``obj`` (no copy; ``obj`` keeps owning the memory)."""
    if SIMULATOR:
        return obj
    return cuda.as_cuda_array(obj)


def to_device(host, stream=0):
    """An explicit host-to-device copy of a NumPy array."""
    return cuda.to_device(host, stream=stream)


def device_array(shape, dtype, stream=0):
    """Uninitialised device memory (C order)."""
    return cuda.device_array(shape, dtype=dtype, stream=stream)


def copy_to_host(dev, stream=0):
    """An explicit device-to-host copy, as a NumPy array."""
    return dev.copy_to_host(stream=stream)


def synchronize() -> None:
    """Wait for all queued work on the current device (the tuner's clock hook)."""
    cuda.synchronize()


def stream_of(obj):
    """The stream a caller's array library is queuing work on, as a numba stream: CuPy's
    and torch's current streams; the default stream otherwise. Kernels launched on it are
    ordered with the caller's own work without a host synchronisation."""
    if SIMULATOR:
        return cuda.default_stream()
    module = type(obj).__module__ or ""
    ptr = None
    if module.startswith("cupy"):
        import cupy
        ptr = cupy.cuda.get_current_stream().ptr
    elif module.startswith("torch"):
        import torch
        ptr = torch.cuda.current_stream(obj.device).cuda_stream
    if not ptr:
        return cuda.default_stream()
    return cuda.external_stream(ptr)


def grid_1d(n: int, threads: int = 256):
    """(blocks, threads) covering ``n`` items with one thread each."""
    return (max(1, -(-n // threads)), threads)


def grid_2d(ny: int, nx: int, ty: int = 16, tx: int = 16):
    """((blocks_y, blocks_x), (ty, tx)) covering an ``ny`` x ``nx`` grid."""
    return ((max(1, -(-ny // ty)), max(1, -(-nx // tx))), (ty, tx))


def compile_ptx(kernel, signature, cc=(8, 0)):
    """PTX text of ``kernel`` (a ``@jit`` dispatcher) for ``signature`` at compute
    capability ``cc``: a type check of the kernel that needs no GPU (the simulator checks
    no types). Needs numba-cuda's NVVM wheels (``numba-cuda[cu13]``)."""
    ptx, _ = cuda.compile_ptx(kernel.py_func, signature, cc=cc)
    return ptx


# -- streams (the kernels' side) ------------------------------------------------------------
#
# Every launcher and every _memory helper queues its work on ``current_stream()``; the
# device plumbing sets it around a call with ``use_stream(stream_of(x))`` so that the
# kernels are ordered with the caller's own work (CuPy's or torch's current stream)
# without a host synchronisation. A context variable, so threads and asyncio tasks each
# keep their own.

_STREAM = _contextvars.ContextVar("fastconv_cuda_stream", default=None)


def current_stream():
    """The stream kernels are launched on now: the one set by ``use_stream``, else the
    default stream."""
    s = _STREAM.get()
    return cuda.default_stream() if s is None else s


@_contextlib.contextmanager
def use_stream(stream):
    """Launch on ``stream`` (a numba stream; None: the default stream) inside the block."""
    token = _STREAM.set(stream)
    try:
        yield stream
    finally:
        _STREAM.reset(token)


def launch(kernel, grid, block, *args):
    """``kernel[grid, block, current_stream()](*args)``: the one launch form."""
    kernel[grid, block, current_stream()](*args)


def strided_view(arr, shape, strides, dtype=None):
    """A view of device array ``arr`` with another ``shape``, byte ``strides`` and
    (optionally) ``dtype`` over the same memory, starting at its element 0 (new size-1
    axes, merged axes, the low bytes of wider integers). No copy."""
    import numpy as np
    shape = tuple(int(s) for s in shape)
    strides = tuple(int(s) for s in strides)
    dtype = arr.dtype if dtype is None else np.dtype(dtype)
    if SIMULATOR:
        from numba.cuda.simulator.cudadrv.devicearray import FakeCUDAArray
        host = arr._ary if isinstance(arr, FakeCUDAArray) else arr
        return FakeCUDAArray(np.asarray(_HostView(host, shape, strides, dtype)))
    from numba.cuda.cudadrv.devicearray import DeviceNDArray
    return DeviceNDArray(shape, strides, dtype, stream=arr.stream, gpu_data=arr.gpu_data)


class _HostView:
    """The simulator's stand-in for a device-memory view: a NumPy array over ``base``'s
    memory from its element 0 (``__array_interface__``; keeps ``base`` alive)."""

    def __init__(self, base, shape, strides, dtype):
        self._base = base
        self.__array_interface__ = {
            "version": 3, "shape": shape, "strides": strides, "typestr": dtype.str,
            "descr": dtype.descr,
            "data": (base.__array_interface__["data"][0], not base.flags.writeable)}


# -- CuPy interop (the cuFFT stage of the FFT launchers) ---------------------------------------
#
# Views both ways without copies and without the host synchronisation that the
# ``__cuda_array_interface__`` exchange performs by default (CuPy's and numba's "sync"
# behaviour): the work is ordered by running CuPy on the same stream instead.

def stream_ptr(stream) -> int:
    """The raw CUstream handle of a numba stream (0: the legacy default stream)."""
    handle = stream.handle
    value = getattr(handle, "value", handle)
    return int(value) if value else 0


def to_cupy(dev):
    """A CuPy view of numba device array ``dev`` (no copy; keeps ``dev`` alive)."""
    import cupy
    ptr = int(dev.device_ctypes_pointer.value or 0)
    mem = cupy.cuda.UnownedMemory(ptr, max(int(dev.alloc_size), 1), dev)
    return cupy.ndarray(tuple(dev.shape), dev.dtype, cupy.cuda.MemoryPointer(mem, 0),
                        strides=tuple(dev.strides))


def from_cupy(arr):
    """A numba device-array view of CuPy array ``arr`` (no copy, no synchronisation)."""
    return cuda.from_cuda_array_interface(arr.__cuda_array_interface__, owner=arr,
                                          sync=False)


def cupy_stream(stream):
    """A context manager that makes ``stream`` CuPy's current stream."""
    import cupy
    ptr = stream_ptr(stream)
    return cupy.cuda.ExternalStream(ptr) if ptr else cupy.cuda.Stream.null
