"""What kind of array came in, where the call runs, and the conversions at the two ends.

Every public function reads its array arguments here, so that adding an array kind (a
CuPy or other CUDA array, a Dask array) changes this module and the dispatcher, not every
public function.

Kinds:

* ``"numpy"``: anything NumPy accepts as an array (lists, scalars, ndarrays, objects with
  ``__array__``), computed on the CPU unless ``device="cuda"``/``"auto"`` asks otherwise;
* ``"dask"``: a ``dask.array.Array``. The public functions that take one hand it to the
  Dask engine (``engine_for``, ``dask_aware``: ``fastconv.engines.dask``), which returns a
  lazy Dask array; ``as_array`` (used for kernels and by functions without an engine
  path, such as ``fastconv.nn``) converts it to NumPy, computing it, as ``np.asarray``
  and scipy do;
* ``"cuda"``: an array that lives on a GPU: anything with ``__cuda_array_interface__``
  (CuPy, torch CUDA tensors, numba device arrays), a DLPack array on a non-CPU device, or
  numba's own device arrays (the simulator's too). It runs on the CUDA kernels, without
  a copy to the host, and the result comes back as the same kind (``Placement``). Without
  numba-cuda or a GPU it is refused with a TypeError that says what to install: a silent
  copy to the host would hide a large transfer.

The device (``device=`` of the public functions, ``FASTCONV_DEVICE`` as the default for
NumPy data): ``None`` runs where the data lives; ``"cpu"``; ``"cuda"`` (NumPy data is
copied in and the result copied out, explicitly); ``"auto"`` (NumPy data goes to the GPU
only when the tuner's measured transfer + compute beats the CPU: ``_dispatch.choose_device``).
Only ``placement`` imports the CUDA backend, and only when a GPU array or a CUDA device
shows up: ``import fastconv`` and the CPU path never load numba-cuda.
"""
from __future__ import annotations

import contextlib

import numpy as np

from . import _config

__all__ = ["array_kind", "as_array", "device_of", "engine_for", "dask_aware",
           "check_device", "placement", "Placement", "CPU", "DEVICE_CHOICES", "run_placed",
           "cuda_problem", "on_cpu"]

# DLPack device types (dlpack.h): 1 = CPU, 3 = CUDA host (pinned), everything else is a
# device memory.
_DLPACK_HOST = (1, 3)

DEVICE_CHOICES = ("cpu", "cuda", "auto")
# numba's device arrays (DeviceNDArray; the simulator's FakeCUDAArray, which has neither
# __cuda_array_interface__ nor a GPU DLPack device) are recognised by their module.
_NUMBA_CUDA_MODULES = ("numba.cuda.", "numba_cuda.")


def array_kind(value) -> str:
    """``"numpy"``, ``"dask"`` or ``"cuda"``: where ``value``'s data lives and who runs it."""
    if isinstance(value, np.ndarray):
        return "numpy"
    cls = type(value)
    module = getattr(cls, "__module__", "") or ""
    if module.startswith("dask.") and hasattr(value, "chunks") and hasattr(value, "dask"):
        return "dask"
    if hasattr(value, "__cuda_array_interface__"):
        return "cuda"
    if module.startswith(_NUMBA_CUDA_MODULES) and hasattr(value, "copy_to_host"):
        return "cuda"
    dev = getattr(value, "__dlpack_device__", None)
    if dev is not None:
        try:
            if int(dev()[0]) not in _DLPACK_HOST:
                return "cuda"
        except Exception:     # a malformed device query: let NumPy decide below
            pass
    return "numpy"


def device_of(kind: str) -> str:
    """The device that runs work on arrays of ``kind``."""
    return "cuda" if kind == "cuda" else "cpu"


def check_device(device):
    """``device=`` checked: None, "cpu", "cuda" or "auto" (ValueError naming it otherwise)."""
    if device is None or (isinstance(device, str) and device in DEVICE_CHOICES):
        return device
    raise ValueError(f"device must be None, 'cpu', 'cuda' or 'auto', got {device!r}")


def _gpu_refusal(name, value, why):
    return TypeError(f"{name} is a GPU array ({type(value).__module__}."
                     f"{type(value).__name__}); {why}")


def as_array(value, name: str) -> np.ndarray:
    """``value`` as a NumPy array of a dtype fastconv computes with, or the exception
    scipy would raise, naming the argument. GPU arrays are refused here (the CPU path):
    ``placement`` is where they are accepted."""
    if array_kind(value) == "cuda":
        raise _gpu_refusal(name, value, "this call runs on the CPU (device='cpu'), and "
                           "fastconv never copies a GPU array to the host silently. Pass "
                           "device=None or 'cuda', or copy it yourself (cupy.asnumpy, "
                           "tensor.cpu().numpy()).")
    arr = np.asarray(value)
    _check_dtype(arr.dtype, name)
    return arr


def _check_dtype(dt, name):
    if dt == object or dt.kind in "SUVMmO":
        raise ValueError(f"{name} has unsupported dtype {dt}; fastconv convolves "
                         f"bool, integer, floating and complex arrays")


def engine_for(*values, device=None):
    """The engine module that runs a call on these arguments, or None for the NumPy path:
    a Dask array among them selects ``fastconv.engines.dask`` (imported only then). Its
    tasks run on the CPU: ``device="cuda"`` with a Dask array is a TypeError."""
    for v in values:
        if array_kind(v) == "dask":
            if check_device(device) == "cuda":
                raise TypeError("device='cuda' does not apply to Dask arrays: fastconv's "
                                "Dask engine runs NumPy chunks on the CPU")
            from .engines import dask as engine
            return engine
    return None


def dask_aware(func):
    """Decorator for public functions whose first argument is the data: a Dask array
    goes to the Dask engine (``engine.filter_call``), anything else to ``func``."""
    import functools

    @functools.wraps(func)
    def wrapper(input, *args, **kwargs):
        engine = engine_for(input, device=kwargs.get("device"))
        if engine is not None:
            return engine.filter_call(func, input, args, kwargs)
        return func(input, *args, **kwargs)
    return wrapper


# -- placement: where a call runs and what kind comes back ------------------------------

class Placement:
    """Where one public call runs (``device``: "cpu", "cuda", or "auto" for NumPy data
    whose device the tuner picks) and how its arrays cross: ``array`` reads an argument
    (a NumPy array, or on "cuda" a numba device-array view of a GPU array, no copy),
    ``scope()`` puts the call on the caller's stream, ``deliver`` gives the result back
    as the kind that came in (NumPy in, NumPy out: an explicit copy from the device)."""

    __slots__ = ("device", "home")

    def __init__(self, device, home=None):
        self.device = device
        self.home = home          # the GPU argument whose kind (and stream) the call keeps

    def array(self, value, name):
        if self.device == "cpu" or array_kind(value) != "cuda":
            return as_array(value, name)
        b = _backend()
        value = _cai(value, name)
        if not b.SIMULATOR and not hasattr(value, "copy_to_host"):
            # A foreign CUDA array: a view without numba's host synchronisation on the
            # producer's stream (the call runs on that stream: Placement.scope).
            if (type(value).__module__ or "").startswith("cupy"):
                return b.from_cupy(value)
            return b.cuda.as_cuda_array(value, sync=False)
        return b.as_device_array(value)

    def scope(self):
        if self.device != "cuda":
            return contextlib.nullcontext()
        b = _backend()
        return b.use_stream(b.stream_of(self.home))     # the default stream for None

    def deliver(self, result):
        """``result`` (a NumPy array, or a device array from the CUDA kernels) as the kind
        of the call's GPU argument, or NumPy when the data came from the host."""
        if isinstance(result, np.ndarray) or self.device != "cuda":
            return result
        home = self.home
        if home is None:
            return _memory().to_host(result)
        module = type(home).__module__ or ""
        if module.startswith("cupy"):
            return _backend().to_cupy(result)      # a view: no copy, no host sync
        if module.startswith("torch"):
            import torch
            return torch.as_tensor(result, device=home.device)
        return result            # numba device arrays (and other CUDA arrays): numba's

    def to_device(self, arr):
        """A NumPy argument on the device: an explicit host-to-device copy."""
        if isinstance(arr, np.ndarray):
            return _memory().from_host(np.ascontiguousarray(arr))
        return arr


CPU = Placement("cpu")


def _cai(value, name):
    """A GPU array as something numba takes without a copy: CUDA array interface
    objects and numba's own arrays as they are; a DLPack-only GPU array through CuPy's
    zero-copy ``from_dlpack``."""
    if hasattr(value, "__cuda_array_interface__") or hasattr(value, "copy_to_host"):
        return value
    try:
        import cupy
    except ImportError:
        raise _gpu_refusal(name, value, "it exposes DLPack but not "
                           "__cuda_array_interface__; install CuPy (zero-copy "
                           "cupy.from_dlpack) or pass a CuPy array or torch tensor") from None
    return cupy.from_dlpack(value)


_BACKEND = None


def _backend():
    """The CUDA backend module (``kernels/cuda/_backend.py``), through the dispatcher."""
    global _BACKEND
    if _BACKEND is None:
        from ._dispatch import device_backend
        _BACKEND = device_backend("cuda")
    return _BACKEND


def _memory():
    from ._dispatch import device_memory
    return device_memory("cuda")


def cuda_problem():
    """Why the CUDA kernels cannot run here (None when they can): numba-cuda missing, or
    no GPU (the simulator, ``NUMBA_ENABLE_CUDASIM=1``, counts as one)."""
    try:
        b = _backend()
    except ImportError as exc:
        return (f"numba-cuda is not installed ({exc}); install the CUDA extra: "
                f"pip install \"fastconv[cuda]\" (CUDA 13) or \"fastconv[cuda12]\"")
    if not b.available():
        return ("numba-cuda found no usable GPU or driver (set NUMBA_ENABLE_CUDASIM=1 for "
                "numba's simulator)")
    return None


_DEFAULT_WARNED = set()


def on_cpu(device, a, b=None) -> bool:
    """The fast lane of every call: NumPy arrays (``b`` None: one argument), no device=,
    NumPy data defaulting to the CPU. True means the plain CPU path, with no engine or
    placement lookup (a Dask or GPU array is never an ndarray)."""
    return (device is None and type(a) is np.ndarray
            and (b is None or type(b) is np.ndarray) and _config.get().device == "cpu")


def placement(device, *named) -> Placement:
    """Where a call on ``named`` ((value, name) pairs, data first) runs: ``device=`` as
    given (checked), else where the data lives; NumPy data takes ``FASTCONV_DEVICE`` as
    its default. A GPU array with device="cpu", or any CUDA device where numba-cuda or a
    GPU is missing, raises TypeError."""
    if device is None:
        # The NumPy path's fast lane (every call takes it): ndarrays need no kind check.
        home = None
        for value, _ in named:
            if not isinstance(value, np.ndarray) and array_kind(value) == "cuda":
                home = value
                break
        if home is None:
            cfg_device = _config.get().device
            if cfg_device == "cpu":
                return CPU
            return _default_placement(cfg_device)
        device = "cuda"
    else:
        device = check_device(device)
        home = next((v for v, _ in named if array_kind(v) == "cuda"), None)
    if device == "cpu":
        if home is not None:
            name = next(n for v, n in named if v is home)
            raise _gpu_refusal(name, home, "device='cpu' runs on the CPU, and fastconv "
                               "never copies a GPU array to the host silently. Copy it "
                               "yourself (cupy.asnumpy, tensor.cpu().numpy()) or pass "
                               "device=None or 'cuda'.")
        return CPU
    why = cuda_problem()
    if why is not None:
        if device == "auto" and home is None:
            return CPU
        if home is not None:
            name = next(n for v, n in named if v is home)
            raise _gpu_refusal(name, home, f"fastconv runs GPU arrays on its CUDA kernels, "
                               f"but {why}.")
        raise TypeError(f"device='cuda' cannot run: {why}.")
    if device == "auto" and home is None:
        return Placement("auto")
    return Placement("cuda", home)


def _default_placement(cfg_device):
    """FASTCONV_DEVICE=cuda/auto for NumPy data: where no GPU can run it, the CPU (one
    warning per process), since an environment default must not break every call."""
    why = cuda_problem()
    if why is None:
        return Placement(cfg_device)
    if cfg_device not in _DEFAULT_WARNED:
        _DEFAULT_WARNED.add(cfg_device)
        import warnings
        warnings.warn(f"FASTCONV_DEVICE={cfg_device!r}: {why}; running on the CPU",
                      RuntimeWarning, stacklevel=4)
    return CPU


def run_placed(where, spec, x, w, method="auto", *, finite_warning=False):
    """Run a validated ConvSpec call off the plain CPU path: on "cuda" (the caller's
    stream; the result as the kind that came in), or for "auto" on the device the tuner
    picks (``_dispatch.choose_device``). ``spec`` was built for "cpu" or "cuda";
    ``finite_warning``: scipy's warning for method='fft' on NaN/Inf data."""
    from dataclasses import replace
    from ._dispatch import choose_device, dispatch, finite
    if where.device == "auto":
        dev = choose_device(spec, x, w, method)[0]
        if dev == "cpu":
            if finite_warning:
                _warn_nonfinite(x, w, finite)
            return dispatch(spec, x, w, method)
        where = Placement("cuda")
    if spec.device != where.device:
        spec = replace(spec, device=where.device)
    with where.scope():
        if finite_warning:
            _warn_nonfinite(x, w, finite)
        return where.deliver(dispatch(spec, x, w, method))


def _warn_nonfinite(x, w, finite):
    from ._compat import warn_fft_nonfinite
    warn_fft_nonfinite(x, w, stacklevel=6, finite=finite)
