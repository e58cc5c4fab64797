"""scipy.ndimage-compatible linear filters: same signatures, modes, output dtypes and
exceptions, computed by fastconv's parallel kernels.

Functions: :func:`convolve`, :func:`correlate`, :func:`convolve1d`, :func:`correlate1d`,
:func:`gaussian_filter`, :func:`gaussian_filter1d`, :func:`uniform_filter`,
:func:`uniform_filter1d`, :func:`sobel`, :func:`prewitt`, :func:`laplace`,
:func:`gaussian_laplace`, :func:`gaussian_gradient_magnitude`.

Modes (scipy.ndimage names; the kernels use numpy.pad's, see docs/guide/boundaries.md):
``reflect``/``grid-mirror`` -> symmetric, ``mirror`` -> reflect, ``nearest`` -> edge,
``wrap``/``grid-wrap`` -> wrap, ``constant``/``grid-constant`` -> constant (``cval``).
Per-axis sequences of modes are accepted where scipy accepts them (gaussian_filter,
uniform_filter, sobel, prewitt, laplace, gaussian_laplace, gaussian_gradient_magnitude).

GPU arrays (CuPy, torch CUDA tensors, numba device arrays) run on the CUDA kernels, and
``device="cuda"`` sends NumPy data there (copied in and back); every filter takes
``device=`` (docs/guide/gpu.md). On the GPU: real data only, ``output`` None or a dtype
(the result is a new GPU array of the input's kind), laplace as one N-d correlation (one
mode for all axes), and gaussian_laplace / gaussian_gradient_magnitude are refused
(TypeError); ``device="auto"`` keeps NumPy data on the CPU.

Precision and dtypes (the policy):

* The output dtype is scipy's: ``output=None`` gives the input's dtype; an array or a
  dtype may be passed. Complex inputs or weights are filtered as real and imaginary parts,
  as scipy does.
* The separable filters (the 1-D filters, gaussian, uniform, sobel, prewitt, laplace,
  gaussian_laplace, gaussian_gradient_magnitude) return scipy's result bit for bit, for
  every input and output dtype, float32 included: each pass runs scipy's float64
  operations in scipy's order (float32 data is widened as it is read, never summed in
  float32), passes run in scipy's order, and each pass is rounded to the output dtype
  before the next reads it, as scipy stores every pass in its output array (integer and
  bool outputs: truncated toward zero, wrapped out of range, as scipy's C cast does).
  Passes on neighbouring axes are fused into one sweep over memory with the same bits.
* N-d :func:`correlate`/:func:`convolve` sum in another order than scipy (any of
  fastconv's methods may run): floating outputs differ in the last bits, and an integer
  output may differ by one where the exact result is an integer and the weights are not
  exactly representable. float32 data with a float32 output is summed in float32 there.
* Non-finite values stay inside the windows that contain them, except in running sums
  (uniform filters, as in scipy): a NaN or Inf that entered the running window spoils the
  rest of its line.
* N-d :func:`correlate`/:func:`convolve` use scipy's footprint: taps with
  ``|w| <= DBL_EPSILON`` (zeros) and NaN taps are left out of the sum, as scipy leaves
  them out, so a zero tap over an Inf sample adds nothing (not NaN) and a NaN weight is
  ignored.
"""
from __future__ import annotations

import contextvars
import numbers
import operator
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

try:
    from numpy.lib.array_utils import normalize_axis_index as _normalize_axis_index
except ImportError:  # numpy < 2
    from numpy.core.multiarray import normalize_axis_index as _normalize_axis_index

from ._arrays import CPU, array_kind, dask_aware, on_cpu, placement
from ._dispatch import decide, device_memory, dispatch
from ._finite import all_finite
from ._validate import ConvSpec, FilterSpec

__all__ = [
    "convolve", "correlate", "convolve1d", "correlate1d", "gaussian_filter",
    "gaussian_filter1d", "uniform_filter", "uniform_filter1d", "sobel", "prewitt",
    "laplace", "gaussian_laplace", "gaussian_gradient_magnitude",
]

# scipy.ndimage mode -> numpy.pad name (the kernels' boundary names). For filters the
# grid-* modes equal their plain counterparts (scipy's _extend_mode_to_code(is_filter)).
MODES = {
    "reflect": "symmetric", "grid-mirror": "symmetric",
    "mirror": "reflect",
    "nearest": "edge",
    "wrap": "wrap", "grid-wrap": "wrap",
    "constant": "constant", "grid-constant": "constant",
}

_REAL_TYPES = frozenset(np.dtype(t) for t in (
    np.bool_, np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.int64,
    np.uint64, np.float32, np.float64))


def _nd_correlate(x, w, out, start, boundary, cval, exact):
    """The one call that runs an N-d correlation (the launcher contract of
    fastconv.kernels: out[i] = sum_j w[j] * X[start + i + j]).

    Floating outputs go through the auto-tuner, so direct, separable, FFT and overlap-add
    all serve every boundary mode. ``exact`` (an integer or bool output, which scipy
    truncates) keeps the direct method: FFT rounding could move a value across an
    integer."""
    spec = ConvSpec(op="ndimage.correlate", x_shape=tuple(x.shape), w_shape=w.shape,
                    out_shape=tuple(out.shape), start=tuple(int(s) for s in start),
                    compute_dtype=x.dtype, result_dtype=x.dtype, boundary=boundary,
                    cval=cval, mode="ndimage", device=_device())
    plan = _METHODS.get()
    if exact or plan is None:
        return dispatch(spec, x, w, "direct" if exact else "auto", out=out)
    if plan.record:              # the Dask engine's client: decide, compute nothing
        plan.methods.append(decide(spec, x, w, "auto").method)
        plan.calls.append((spec, w))
        return out
    return dispatch(spec, x, w, plan.methods.pop(0) if plan.methods else "auto", out=out)


@dataclass
class _MethodPlan:
    """The methods of a block's N-d correlations, decided once on the Dask engine's
    client (``record``) and replayed, in call order, in its tasks; ``calls``: the
    recorded (ConvSpec, prepared weights) of each, for the engine to run a block's
    outputs alone."""
    methods: list
    record: bool
    calls: list = field(default_factory=list)


_METHODS = contextvars.ContextVar("fastconv_ndimage_methods", default=None)


# -- the GPU path ---------------------------------------------------------------------------
# A GPU array (or device="cuda"/"auto") runs the same argument handling in "device mode":
# ``_PLACE`` holds the call's placement, ``_asarray`` keeps the data on the GPU,
# ``_get_output`` gives a description of the output (the result is a new GPU array of
# that dtype), and the passes and N-d correlations dispatch FilterSpecs and ConvSpecs for
# device "cuda". Weights stay on the host (an explicit copy when given as a GPU array).

_PLACE = contextvars.ContextVar("fastconv_ndimage_place", default=None)


def _device():
    where = _PLACE.get()
    return "cpu" if where is None else "cuda"


def _asarray(a):
    """The data argument: a NumPy array, or in device mode the GPU array it already is."""
    if _PLACE.get() is None:
        return np.asarray(a)
    return a


def _weights(w):
    """Weights as a host NumPy array (a GPU array of weights: an explicit copy of the
    small operand)."""
    if isinstance(w, np.ndarray) or array_kind(w) != "cuda":
        return np.asarray(w)
    from ._arrays import Placement
    return device_memory("cuda").to_host(Placement("cuda").array(w, "weights"))


def _complex_on_gpu():
    return TypeError("complex data or weights run on the CPU only in fastconv.ndimage "
                     "(its GPU path filters real arrays); fastconv.convolve/correlate take "
                     "complex GPU arrays")


@dataclass(frozen=True)
class _DeviceOut:
    """``output`` in device mode: the dtype and shape of the GPU array to return."""
    shape: tuple
    dtype: np.dtype

    @property
    def size(self):
        return int(np.prod(self.shape))


def _device_output(output, input, shape, complex_output):
    if isinstance(output, _DeviceOut):
        return output
    if complex_output or input.dtype.kind == "c":
        raise _complex_on_gpu()
    if output is None:
        return _DeviceOut(tuple(shape), np.dtype(input.dtype))
    if isinstance(output, (type, np.dtype, str)):
        dt = np.dtype(output)
        if not issubclass(dt.type, np.number) and dt != np.bool_:
            raise RuntimeError("output must have numeric dtype")
        return _DeviceOut(tuple(shape), dt)
    raise TypeError("output must be None or a dtype for GPU input (the result is a new "
                    "GPU array of the input's kind)")


def _device_store(mem, x, dt):
    """A float GPU array ``x`` cast to the output dtype ``dt`` as scipy's C cast stores it:
    floats round, integers truncate toward zero through int64 and wrap (bool: != 0)."""
    if x.dtype == dt:
        return x
    if dt.kind in "biu" and dt != np.uint64:
        return mem.finish(mem.convert(x, np.dtype(np.int64)), dt, False, False)
    return mem.convert(x, dt)


def _device_float(mem, x, dt):
    """The data in a float compute dtype, C-contiguous (bool read by its bytes)."""
    if x.dtype == np.bool_:
        x = x.view(np.uint8)
    return mem.convert(x, dt)


def _device_separable(input, passes, output, cval):
    """``_separable`` on the GPU: the same passes and per-pass rounding, each pass one
    FilterSpec on device "cuda"; returns a new GPU array of ``output.dtype``."""
    mem = device_memory("cuda")
    _check_real_dtypes(input, output)
    cval = _check_real_cval(cval)
    dt_out = output.dtype
    if not passes:                 # scipy copies the input into the output
        if input.dtype == dt_out and input.is_c_contiguous():
            copy = mem.empty(tuple(input.shape), dt_out)
            from ._dispatch import device_backend
            copy.copy_to_device(input, stream=device_backend("cuda").current_stream())
            return copy
        return _device_store(mem, _device_float(mem, input, np.dtype(np.float64)), dt_out)
    if dt_out.kind in "biu":
        current = input
        for p in passes:
            dt = _compute_dtype(current.dtype, dt_out)
            x = _device_float(mem, current, dt)
            out = mem.empty(tuple(x.shape), dt)
            _run_step(x, (p,), out, cval)
            current = _device_store(mem, out, dt_out)
        return current
    dt_in = input.dtype if input.dtype in (np.float32, np.float64) else np.dtype(np.float64)
    x = _device_float(mem, input, dt_in)
    for step in _steps(passes, input.ndim):
        out = mem.empty(tuple(x.shape), dt_out)
        _run_step(x, step, out, cval)
        x = out
    return x


def _device_correlate(input, w, output, dt, start, boundary, cval):
    """N-d correlation on the GPU (``w`` prepared on the host), stored as scipy stores it.
    scipy's footprint rule (zero taps skip NaN/Inf data) is not applied on the GPU: a
    zero tap over a NaN/Inf sample gives NaN in the outputs whose window holds it."""
    if input.ndim == 0:
        raise TypeError("0-d GPU arrays are not filtered on the GPU; pass a 0-d NumPy "
                        "array")
    mem = device_memory("cuda")
    x = _device_float(mem, input, dt)
    out = mem.empty(tuple(x.shape), dt)
    result = _nd_correlate(x, w, out, start, boundary, cval,
                           exact=output.dtype.kind in "biu")
    return _device_store(mem, result, output.dtype)


def _device_laplace(input, output, mode, cval, axes):
    """laplace on the GPU as one N-d correlation with the sum of the [1, -2, 1] stencils
    along ``axes`` (one mode for all of them): the same values as scipy's sum of 1-D
    passes, exactly for integer data, to the last bits for floats."""
    modes = set(_normalize_sequence(mode, len(axes)))
    if len(modes) > 1:
        raise TypeError("laplace on the GPU takes one mode for every axis")
    if not axes:
        return _device_store(device_memory("cuda"), input, output.dtype)
    w = np.zeros((3,) * input.ndim)
    centre = (1,) * input.ndim
    for ax in axes:
        for off, v in ((0, 1.0), (2, 1.0)):
            idx = list(centre)
            idx[ax] = off
            w[tuple(idx)] += v
        w[centre] -= 2.0
    if len(axes) < input.ndim:
        # axes not filtered: a 1-wide kernel along them (no reads beyond the sample)
        w = w[tuple(slice(None) if ax in axes else slice(1, 2) for ax in range(input.ndim))]
    return _correlate_or_convolve(input, w, output, modes.pop(), cval, 0, False, None)


def gpu_aware(func):
    """Decorator for the filters GPU arrays can reach: ``device=`` chooses where the call
    runs (None: where ``input`` lives; NumPy data with 'cuda': copied in and back); off
    the CPU, ``func`` runs in device mode on the caller's stream and the result comes back
    as the kind that came in."""
    import functools

    @functools.wraps(func)
    def wrapper(input, *args, device=None, **kwargs):
        if on_cpu(device, input) or _PLACE.get() is not None:
            # NumPy data on the CPU (the fast lane), or a filter calling another inside
            # a device call (same placement)
            return func(input, *args, **kwargs)
        where = placement(device, (input, "input"))
        if where is CPU:
            return func(input, *args, **kwargs)
        if where.device == "auto":
            # ndimage filters are bandwidth-bound passes: NumPy data takes the GPU
            # only when asked ("cuda"); "auto" keeps it where it is.
            return func(input, *args, **kwargs)
        x = where.array(input, "input")
        if isinstance(x, np.ndarray):
            x = where.to_device(x)
        token = _PLACE.set(where)
        try:
            with where.scope():
                return where.deliver(func(x, *args, **kwargs))
        finally:
            _PLACE.reset(token)
    return wrapper


# -- scipy's argument handling (same rules, same exceptions) ---------------------------------

def _boundary(mode):
    if isinstance(mode, str) and mode in MODES:
        return MODES[mode]
    raise RuntimeError("boundary mode not supported")


def _normalize_sequence(value, rank):
    if not isinstance(value, str) and np.iterable(value):
        normalized = list(value)
        if len(normalized) != rank:
            raise RuntimeError("sequence argument must have length equal to input rank")
        return normalized
    return [value] * rank


def _get_output(output, input, shape=None, complex_output=False):
    if shape is None:
        shape = input.shape
    if _PLACE.get() is not None:
        return _device_output(output, input, shape, complex_output)
    if output is None:
        if not complex_output:
            return np.zeros(shape, dtype=input.dtype.name)
        return np.zeros(shape, dtype=np.promote_types(input.dtype, np.complex64))
    if isinstance(output, (type, np.dtype)):
        if complex_output and np.dtype(output).kind != "c":
            warnings.warn("promoting specified output dtype to complex", stacklevel=3)
            output = np.promote_types(output, np.complex64)
        return np.zeros(shape, dtype=output)
    if isinstance(output, str):
        output = np.dtype(output)
        if complex_output and output.kind != "c":
            raise RuntimeError("output must have complex dtype")
        if not issubclass(output.type, np.number):
            raise RuntimeError("output must have numeric dtype")
        return np.zeros(shape, dtype=output)
    output = np.asarray(output)
    if output.shape != shape:
        raise RuntimeError("output shape not correct")
    if complex_output and output.dtype.kind != "c":
        raise RuntimeError("output must have complex dtype")
    return output


def _check_axes(axes, ndim):
    if axes is None:
        return tuple(range(ndim))
    if np.isscalar(axes):
        axes = (operator.index(axes),)
    elif isinstance(axes, Iterable):
        axes = tuple(operator.index(ax) for ax in axes)
        for ax in axes:
            if ax < -ndim or ax > ndim - 1:
                raise ValueError(f"specified axis: {ax} is out of range")
        axes = tuple(ax % ndim if ax < 0 else ax for ax in axes)
    else:
        raise ValueError("axes must be an integer, iterable of integers, or None")
    if len(set(axes)) != len(axes):
        raise ValueError("axes must be unique")
    return axes


def _normalize_axis(axis, ndim):
    return _normalize_axis_index(operator.index(axis), ndim)


def _check_origin(origin):
    """An origin as scipy takes it: an integer (``operator.index``), so ``0.5`` and ``1.0``
    raise TypeError, as in scipy.ndimage."""
    return operator.index(origin)


def _invalid_origin(origin, lenw):
    return (origin < -(lenw // 2)) or (origin > (lenw - 1) // 2)


def _native(dt):
    """``dt`` in the machine's byte order: scipy.ndimage accepts big-endian (non-native)
    arrays, inputs and outputs alike; the kernels read native copies (``_as_compute``) and
    ``_store`` casts into a non-native output."""
    return dt.newbyteorder("=") if dt.byteorder not in "=|" else dt


def _check_real_dtypes(*arrays):
    for a in arrays:
        if _native(a.dtype) not in _REAL_TYPES:
            raise RuntimeError(f"array type {a.dtype!r} not supported")


def _check_real_cval(cval):
    """``cval`` as a float, by the rule of scipy.ndimage's C layer (a real number: a
    Python or NumPy number or a 0-d array; a string, None or a list raise TypeError)."""
    if isinstance(cval, np.ndarray) and cval.ndim == 0:
        cval = cval[()]
    if np.iscomplexobj(cval):
        raise TypeError("must be real number, not complex")
    if isinstance(cval, (str, bytes)) or not (hasattr(type(cval), "__float__")
                                               or hasattr(type(cval), "__index__")):
        raise TypeError(f"must be real number, not {type(cval).__name__}")
    return float(cval)


def _complex_via_real_components(func, input, weights, output, cval, **kwargs):
    """Complex filtering as real filterings (scipy's rule: the real and imaginary parts of
    the input and of the weights, cval's parts with the input's)."""
    if _PLACE.get() is not None:
        raise _complex_on_gpu()
    complex_input = input.dtype.kind == "c"
    complex_weights = weights.dtype.kind == "c"
    if complex_input and complex_weights:
        func(input.real, weights.real, output=output.real, cval=np.real(cval), **kwargs)
        output.real -= func(input.imag, weights.imag, output=None, cval=np.imag(cval),
                            **kwargs)
        func(input.real, weights.imag, output=output.imag, cval=np.real(cval), **kwargs)
        output.imag += func(input.imag, weights.real, output=None, cval=np.imag(cval),
                            **kwargs)
    elif complex_input:
        func(input.real, weights, output=output.real, cval=np.real(cval), **kwargs)
        func(input.imag, weights, output=output.imag, cval=np.imag(cval), **kwargs)
    else:
        if np.iscomplexobj(cval):
            raise ValueError("Cannot provide a complex-valued cval when the input is real.")
        func(input, weights.real, output=output.real, cval=cval, **kwargs)
        func(input, weights.imag, output=output.imag, cval=cval, **kwargs)
    return output


# -- running the kernels ------------------------------------------------------------------------

def _compute_dtype(in_dtype, out_dtype):
    """float32 only when both ends are float32; float64 otherwise (scipy's arithmetic)."""
    if _native(in_dtype) == np.float32 and _native(out_dtype) == np.float32:
        return np.dtype(np.float32)
    return np.dtype(np.float64)


def _store(result, output):
    """Cast a float result into ``output`` as scipy's C cast does: truncation toward zero
    for integers (through int64, so out-of-range values wrap), for bool the truncated
    value's low byte."""
    if result is output:
        return output
    kind = output.dtype.kind
    with np.errstate(invalid="ignore", over="ignore"):
        if kind == "b":      # scipy stores (npy_bool)(double): the truncated byte
            np.copyto(output.view(np.uint8), result.astype(np.int64), casting="unsafe")
        elif kind in "iu" and output.dtype.type is not np.uint64:
            np.copyto(output, result.astype(np.int64), casting="unsafe")
        else:
            np.copyto(output, result, casting="unsafe")
    return output


def _as_compute(a, dt):
    """``a`` C-contiguous in the compute dtype; bool arrays are read by their bytes, as
    scipy reads them (a bool output of an earlier pass may hold any byte)."""
    if a.dtype == np.bool_:
        a = a.view(np.uint8)
    return np.ascontiguousarray(a, dtype=dt)


def _target(x, output, dt):
    """Where a kernel writes: ``output`` itself when it is C-contiguous in the compute
    dtype and does not overlap the kernel's input, else a new array."""
    if (output.dtype == dt and output.flags.c_contiguous
            and not np.may_share_memory(output, x)):
        return output
    return np.empty(x.shape, dt)


@dataclass(frozen=True)
class _Pass:
    """One 1-D pass: weights (float64) or, when ``weights`` is None, a box of ``size``;
    ``start`` is the extended index read by output 0's first tap."""
    axis: int
    start: int
    boundary: str
    weights: np.ndarray | None = None
    size: int = 0


def _run_step(x, step, out, cval):
    """One step (a pass, or two weighted passes on neighbouring axes fused in one sweep,
    in the order given), x -> out (C-contiguous floats), scipy's arithmetic, through the
    dispatcher."""
    spec = FilterSpec(tuple((p.axis, p.start, p.boundary, p.weights, p.size) for p in step),
                      cval, _device())
    return dispatch(spec, x, None, "passes", out=out)


def _steps(passes, ndim):
    """scipy's passes in scipy's order, as steps of one pass or a fused pair (same bits as
    two passes): weighted passes on neighbouring axes (a then a + 1, or a + 1 then a), and
    box passes on axis a then a + 1 when a + 1 is the last axis (the running sums down a
    then run row by row, and eight rows at a time along the last axis)."""
    steps = []
    i = 0
    while i < len(passes):
        p = passes[i]
        if i + 1 < len(passes):
            q = passes[i + 1]
            weighted = p.weights is not None and q.weights is not None
            boxes = (p.weights is None and q.weights is None
                     and q.axis == p.axis + 1 == ndim - 1)
            if (weighted and abs(p.axis - q.axis) == 1) or boxes:
                steps.append((p, q))
                i += 2
                continue
        steps.append((p,))
        i += 1
    return steps


def _float_input(a):
    """``a`` as a C-contiguous float32/float64 array (other dtypes widened to float64,
    exactly as scipy reads them; bool by its bytes)."""
    native = a.dtype.newbyteorder("=")
    if native in (np.float32, np.float64):
        return np.ascontiguousarray(a, dtype=native)      # big-endian: a native copy
    return _as_compute(a, np.float64)


def _separable(input, passes, output, cval):
    """Apply 1-D ``passes`` in order to real ``input``, result in real ``output``:
    scipy's result bit for bit.

    Each pass is scipy's float64 arithmetic, rounded to the output dtype; scipy stores
    every pass in its output array, so the next pass reads that rounding (integer and
    bool outputs: truncated and wrapped as scipy's C cast does)."""
    if _PLACE.get() is not None:
        return _device_separable(input, passes, output, cval)
    if not passes:
        output[...] = input[...]
        return output
    _check_real_dtypes(input, output)
    cval = _check_real_cval(cval)
    if output.dtype.kind in "biu":
        current = input
        for p in passes:
            dt = _compute_dtype(current.dtype, output.dtype)
            x = _as_compute(current, dt)
            _store(_run_step(x, (p,), _target(x, output, dt), cval), output)
            current = output
        return output
    x = _float_input(input)
    dt = output.dtype.newbyteorder("=")     # kernels compute in native byte order
    steps = _steps(passes, input.ndim)
    for n, step in enumerate(steps):
        last = n == len(steps) - 1
        out = _target(x, output, dt) if last else np.empty(x.shape, dt)
        _run_step(x, step, out, cval)
        x = out
    return _store(x, output)


def _split_complex(func, input, output, cval):
    """Run a real filter ``func(input, output, cval)`` on complex data part by part."""
    if _PLACE.get() is not None and input.dtype.kind == "c":
        raise _complex_on_gpu()
    if input.dtype.kind == "c":
        if output.dtype.kind != "c":
            raise RuntimeError("output must have complex dtype")
        func(input.real, output.real, np.real(cval))
        func(input.imag, output.imag, np.imag(cval))
        return output
    if output.dtype.kind == "c":
        raise RuntimeError(f"array type {output.dtype!r} not supported")
    return func(input, output, cval)


# -- 1-D filters ----------------------------------------------------------------------------

@dask_aware
@gpu_aware
def correlate1d(input, weights, axis=-1, output=None, mode="reflect", cval=0.0, origin=0, *,
                device=None):
    """Calculate a 1-D correlation along the given axis (scipy.ndimage.correlate1d).

    The lines of the array along ``axis`` are correlated with ``weights``. ``mode`` is one
    of reflect, constant, nearest, mirror, wrap, grid-constant, grid-mirror, grid-wrap;
    ``cval`` fills past the edges in constant mode; ``origin`` shifts the filter
    (``-(len(weights) // 2) <= origin <= (len(weights) - 1) // 2``). ``output`` is an
    array or a dtype; by default the input's dtype.
    """
    input = _asarray(input)
    weights = _weights(weights)
    if input.dtype.kind == "c" or weights.dtype.kind == "c":
        if weights.dtype.kind == "c":
            weights = weights.conj().astype(np.complex128, copy=False)
        output = _get_output(output, input, complex_output=True)
        return _complex_via_real_components(correlate1d, input, weights, output, cval,
                                            axis=axis, mode=mode, origin=origin)
    output = _get_output(output, input)
    weights = np.asarray(weights, dtype=np.float64)
    if weights.ndim != 1 or weights.shape[0] < 1:
        raise RuntimeError("no filter weights given")
    axis = _normalize_axis(axis, input.ndim)
    origin = _check_origin(origin)
    if _invalid_origin(origin, len(weights)):
        raise ValueError("Invalid origin; origin must satisfy -(len(weights) // 2) <= "
                         "origin <= (len(weights)-1) // 2")
    boundary = _boundary(mode)
    start = -(len(weights) // 2 + int(origin))
    return _separable(input, [_Pass(axis, start, boundary, weights=weights)], output, cval)


@dask_aware
@gpu_aware
def convolve1d(input, weights, axis=-1, output=None, mode="reflect", cval=0.0, origin=0, *,
               device=None):
    """Calculate a 1-D convolution along the given axis (scipy.ndimage.convolve1d)."""
    weights = _weights(weights)
    weights = weights[::-1]
    origin = -_check_origin(origin)
    if not weights.shape[0] & 1:
        origin -= 1
    if weights.dtype.kind == "c":
        weights = weights.conj()      # undo the conjugation correlate1d applies
    return correlate1d(input, weights, axis, output, mode, cval, origin)


def _gaussian_kernel1d(sigma, order, radius):
    """The sampled Gaussian (order 0) or its ``order``-th derivative, normalised as scipy
    does: phi / sum(phi), times the derivative's polynomial."""
    if order < 0:
        raise ValueError("order must be non-negative")
    exponent_range = np.arange(order + 1)
    sigma2 = sigma * sigma
    x = np.arange(-radius, radius + 1)
    phi_x = np.exp(-0.5 / sigma2 * x ** 2)
    phi_x = phi_x / phi_x.sum()
    if order == 0:
        return phi_x
    # f(x) = q(x) * phi(x); f'(x) = (q'(x) + q(x) * p'(x)) * phi(x), p'(x) = -x / sigma^2:
    # apply the operator D + P to q's coefficients ``order`` times.
    q = np.zeros(order + 1)
    q[0] = 1
    D = np.diag(exponent_range[1:], 1)
    P = np.diag(np.ones(order) / -sigma2, -1)
    Q_deriv = D + P
    for _ in range(order):
        q = Q_deriv.dot(q)
    q = (x[:, None] ** exponent_range).dot(q)
    return q * phi_x


def _gaussian_weights(sigma, order, truncate, radius):
    """Correlation weights of gaussian_filter1d (the kernel reversed)."""
    sd = float(sigma)
    lw = int(truncate * sd + 0.5)
    if radius is not None:
        lw = radius
    if not isinstance(lw, numbers.Integral) or lw < 0:
        raise ValueError("Radius must be a nonnegative integer.")
    return _gaussian_kernel1d(sigma, order, lw)[::-1]


@dask_aware
@gpu_aware
def gaussian_filter1d(input, sigma, axis=-1, order=0, output=None, mode="reflect",
                      cval=0.0, truncate=4.0, *, radius=None, device=None):
    """1-D Gaussian filter (scipy.ndimage.gaussian_filter1d).

    ``order`` 0 smooths, ``order`` k > 0 convolves with the k-th derivative of a
    Gaussian. The kernel has radius ``int(truncate * sigma + 0.5)`` unless ``radius``
    (a nonnegative integer) is given.
    """
    weights = _gaussian_weights(sigma, order, truncate, radius)
    return correlate1d(input, weights, axis, output, mode, cval, 0)


@dask_aware
@gpu_aware
def uniform_filter1d(input, size, axis=-1, output=None, mode="reflect", cval=0.0,
                     origin=0, *, device=None):
    """1-D uniform (box, mean) filter along the given axis (scipy.ndimage.uniform_filter1d),
    computed as a running sum: O(1) work per element whatever ``size``."""
    input = _asarray(input)
    axis = _normalize_axis(axis, input.ndim)
    if size < 1:
        raise RuntimeError("incorrect filter size")
    origin = _check_origin(origin)
    complex_output = input.dtype.kind == "c"
    output = _get_output(output, input, complex_output=complex_output)
    if (size // 2 + origin < 0) or (size // 2 + origin >= size):
        raise ValueError("invalid origin")
    boundary = _boundary(mode)
    p = _Pass(axis, -(size // 2 + int(origin)), boundary, size=int(size))
    return _split_complex(lambda i, o, c: _separable(i, [p], o, c), input, output, cval)


# -- N-d separable filters --------------------------------------------------------------------

@dask_aware
@gpu_aware
def gaussian_filter(input, sigma, order=0, output=None, mode="reflect", cval=0.0,
                    truncate=4.0, *, radius=None, axes=None, device=None):
    """Multidimensional Gaussian filter (scipy.ndimage.gaussian_filter).

    ``sigma``, ``order``, ``mode`` and ``radius`` may be sequences, one entry per filtered
    axis (``axes``, by default all). Axes with sigma <= 1e-15 are left alone. Computed as
    separable passes, two axes fused per sweep where possible.
    """
    input = _asarray(input)
    output = _get_output(output, input)
    axes = _check_axes(axes, input.ndim)
    num_axes = len(axes)
    orders = _normalize_sequence(order, num_axes)
    sigmas = _normalize_sequence(sigma, num_axes)
    modes = _normalize_sequence(mode, num_axes)
    radiuses = _normalize_sequence(radius, num_axes)
    passes = []
    for ii in range(num_axes):
        if not sigmas[ii] > 1e-15:
            continue
        weights = _gaussian_weights(sigmas[ii], orders[ii], truncate, radiuses[ii])
        boundary = _boundary(modes[ii])
        passes.append(_Pass(axes[ii], -(len(weights) // 2), boundary, weights=weights))
    return _split_complex(lambda i, o, c: _separable(i, passes, o, c), input, output, cval)


@dask_aware
@gpu_aware
def uniform_filter(input, size=3, output=None, mode="reflect", cval=0.0, origin=0, *,
                   axes=None, device=None):
    """Multidimensional uniform (box, mean) filter (scipy.ndimage.uniform_filter).

    ``size``, ``origin`` and ``mode`` may be sequences, one per filtered axis. Running
    sums: O(1) work per element whatever the size; two axes fused per sweep.
    """
    input = _asarray(input)
    output = _get_output(output, input, complex_output=input.dtype.kind == "c")
    axes = _check_axes(axes, input.ndim)
    num_axes = len(axes)
    sizes = _normalize_sequence(size, num_axes)
    origins = [_check_origin(o) for o in _normalize_sequence(origin, num_axes)]
    modes = _normalize_sequence(mode, num_axes)
    passes = []
    for ii in range(num_axes):
        if not sizes[ii] > 1:
            continue
        s, o = int(sizes[ii]), origins[ii]
        if (s // 2 + o < 0) or (s // 2 + o >= s):
            raise ValueError("invalid origin")
        passes.append(_Pass(axes[ii], -(s // 2 + int(o)), _boundary(modes[ii]), size=s))
    return _split_complex(lambda i, o, c: _separable(i, passes, o, c), input, output, cval)


def _derivative_filter(input, axis, output, mode, cval, derivative, smooth):
    input = _asarray(input)
    axis = _normalize_axis(axis, input.ndim)
    output = _get_output(output, input)
    modes = _normalize_sequence(mode, input.ndim)
    d = np.asarray(derivative, dtype=np.float64)
    s = np.asarray(smooth, dtype=np.float64)
    passes = [_Pass(axis, -1, _boundary(modes[axis]), weights=d)]
    passes += [_Pass(ii, -1, _boundary(modes[ii]), weights=s)
               for ii in range(input.ndim) if ii != axis]
    return _split_complex(lambda i, o, c: _separable(i, passes, o, c), input, output, cval)


@dask_aware
@gpu_aware
def sobel(input, axis=-1, output=None, mode="reflect", cval=0.0, *, device=None):
    """Sobel filter (scipy.ndimage.sobel): derivative [-1, 0, 1] along ``axis``,
    smoothing [1, 2, 1] along every other axis, as fused separable passes."""
    return _derivative_filter(input, axis, output, mode, cval, [-1, 0, 1], [1, 2, 1])


@dask_aware
@gpu_aware
def prewitt(input, axis=-1, output=None, mode="reflect", cval=0.0, *, device=None):
    """Prewitt filter (scipy.ndimage.prewitt): derivative [-1, 0, 1] along ``axis``,
    smoothing [1, 1, 1] along every other axis."""
    return _derivative_filter(input, axis, output, mode, cval, [-1, 0, 1], [1, 1, 1])


def _generic_laplace(input, derivative2, output, mode, cval, extra_arguments=(),
                     extra_keywords=None, axes=None):
    extra_keywords = extra_keywords or {}
    input = _asarray(input)
    output = _get_output(output, input)
    axes = _check_axes(axes, input.ndim)
    if _PLACE.get() is not None:
        if derivative2.__name__ != "laplace_derivative2":
            raise TypeError("gaussian_laplace runs on the CPU only; fastconv's GPU path "
                            "covers convolve, correlate, the 1-D filters, gaussian, "
                            "uniform, sobel, prewitt and laplace")
        return _device_laplace(input, output, mode, cval, axes)
    if len(axes) > 0:
        modes = _normalize_sequence(mode, len(axes))
        derivative2(input, axes[0], output, modes[0], cval, *extra_arguments,
                    **extra_keywords)
        for ii in range(1, len(axes)):
            tmp = derivative2(input, axes[ii], output.dtype, modes[ii], cval,
                              *extra_arguments, **extra_keywords)
            output += tmp
    else:
        output[...] = input[...]
    return output


@dask_aware
@gpu_aware
def laplace(input, output=None, mode="reflect", cval=0.0, *, axes=None, device=None):
    """N-d Laplace filter from second differences [1, -2, 1] (scipy.ndimage.laplace)."""
    def laplace_derivative2(input, axis, output, mode, cval):
        return correlate1d(input, [1, -2, 1], axis, output, mode, cval, 0)
    return _generic_laplace(input, laplace_derivative2, output, mode, cval, axes=axes)


@dask_aware
@gpu_aware
def gaussian_laplace(input, sigma, output=None, mode="reflect", cval=0.0, *, axes=None,
                     device=None, **kwargs):
    """Laplace filter from Gaussian second derivatives (scipy.ndimage.gaussian_laplace);
    extra keywords (truncate, radius) go to :func:`gaussian_filter`."""
    input = _asarray(input)

    def derivative2(input, axis, output, mode, cval, sigma, **kwargs):
        order = [0] * input.ndim
        order[axis] = 2
        return gaussian_filter(input, sigma, order, output, mode, cval, **kwargs)

    axes = _check_axes(axes, input.ndim)
    num_axes = len(axes)
    sigma = _normalize_sequence(sigma, num_axes)
    if num_axes < input.ndim:
        sigma_temp = [0] * input.ndim
        for s, ax in zip(sigma, axes):
            sigma_temp[ax] = s
        sigma = sigma_temp
    return _generic_laplace(input, derivative2, output, mode, cval, extra_arguments=(sigma,),
                            extra_keywords=kwargs, axes=axes)


@dask_aware
@gpu_aware
def gaussian_gradient_magnitude(input, sigma, output=None, mode="reflect", cval=0.0, *,
                                axes=None, device=None, **kwargs):
    """Gradient magnitude from Gaussian first derivatives
    (scipy.ndimage.gaussian_gradient_magnitude)."""
    input = _asarray(input)

    def derivative(input, axis, output, mode, cval, sigma, **kwargs):
        order = [0] * input.ndim
        order[axis] = 1
        return gaussian_filter(input, sigma, order, output, mode, cval, **kwargs)

    if _PLACE.get() is not None:
        raise TypeError("gaussian_gradient_magnitude runs on the CPU only; fastconv's GPU "
                        "path covers convolve, correlate, the 1-D filters, gaussian, "
                        "uniform, sobel, prewitt and laplace")
    output = _get_output(output, input)
    axes = _check_axes(axes, input.ndim)
    if len(axes) > 0:
        modes = _normalize_sequence(mode, len(axes))
        derivative(input, axes[0], output, modes[0], cval, sigma, **kwargs)
        np.multiply(output, output, output)
        for ii in range(1, len(axes)):
            tmp = derivative(input, axes[ii], output.dtype, modes[ii], cval, sigma,
                             **kwargs)
            np.multiply(tmp, tmp, tmp)
            output += tmp
        np.sqrt(output, output, casting="unsafe")
    else:
        output[...] = input[...]
    return output


# -- N-d correlation ------------------------------------------------------------------------

def _expand_origin(ndim_image, axes, origin):
    origins = [_check_origin(o) for o in _normalize_sequence(origin, len(axes))]
    if len(axes) < ndim_image:
        full = [0] * ndim_image
        for o, ax in zip(origins, axes):
            full[ax] = o
        origins = full
    return origins


def _correlate_or_convolve(input, weights, output, mode, cval, origin, convolution, axes):
    input = _asarray(input)
    weights = _weights(weights)
    if input.dtype.kind == "c" or weights.dtype.kind == "c":
        if weights.dtype.kind == "c" and not convolution:
            weights = weights.conj()      # as np.correlate: conjugate the weights
        output = _get_output(output, input, complex_output=True)
        return _complex_via_real_components(_correlate_or_convolve, input, weights, output,
                                            cval, mode=mode, origin=origin,
                                            convolution=convolution, axes=axes)
    axes = _check_axes(axes, input.ndim)
    weights = np.asarray(weights, dtype=np.float64)
    if len(axes) < input.ndim:
        if weights.ndim != len(axes):
            raise RuntimeError(f"weights.ndim ({weights.ndim}) must match len(axes) "
                               f"({len(axes)})")
        weights = np.expand_dims(weights, tuple(ax for ax in range(input.ndim)
                                                if ax not in axes))
    origins = _expand_origin(input.ndim, axes, origin)
    wshape = [ii for ii in weights.shape if ii > 0]
    if len(wshape) != input.ndim:
        raise RuntimeError(f"weights.ndim ({len(wshape)}) must match len(axes) ({len(axes)})")
    if convolution:
        weights = weights[(slice(None, None, -1),) * weights.ndim]
        for ii in range(len(origins)):
            origins[ii] = -origins[ii]
            if not weights.shape[ii] & 1:
                origins[ii] -= 1
    for o, lenw in zip(origins, wshape):
        if _invalid_origin(o, lenw):
            raise ValueError("Invalid origin; origin must satisfy -(weights.shape[k] // 2) "
                             "<= origin[k] <= (weights.shape[k]-1) // 2")
    output = _get_output(output, input)
    if not isinstance(mode, str) and isinstance(mode, Iterable):
        raise RuntimeError("A sequence of modes is not supported")
    boundary = _boundary(mode)
    _check_real_dtypes(input, output)
    cval = _check_real_cval(cval)
    if output.size == 0:
        if _PLACE.get() is not None:
            return device_memory("cuda").empty(output.shape, output.dtype)
        return output
    dt = _compute_dtype(input.dtype, output.dtype)
    keep = _footprint(weights)
    if not keep.all():
        weights = np.where(keep, weights, 0.0)
    w = np.ascontiguousarray(weights, dtype=dt)
    start = tuple(-(k // 2 + int(o)) for k, o in zip(weights.shape, origins))
    if _PLACE.get() is not None:
        return _device_correlate(input, w, output, dt, start, boundary, cval)
    x = _as_compute(input, dt)
    if input.ndim == 0:
        result = np.asarray(x * w, dtype=dt)
    elif not keep.all() and not (all_finite(x) and np.isfinite(cval)):
        result = _footprint_correlate(x, w, keep, _target(x, output, dt), start, boundary,
                                      cval, exact=output.dtype.kind in "biu")
    else:
        result = _nd_correlate(x, w, _target(x, output, dt), start, boundary, cval,
                               exact=output.dtype.kind in "biu")
    return _store(result, output)


# scipy.ndimage.correlate/convolve (NI_Correlate) read only the taps with
# |w| > DBL_EPSILON: zero, tiny and NaN weights (NaN > eps is false) are left out of the
# sum, so they never meet the data (no NaN from 0 * Inf, no NaN from a NaN weight).
_DBL_EPSILON = float(np.finfo(np.float64).eps)


def _footprint(weights):
    """scipy's footprint of float64 ``weights``: the taps that take part in the sum."""
    with np.errstate(invalid="ignore"):
        return np.abs(weights) > _DBL_EPSILON


def _footprint_correlate(x, w, keep, out, start, boundary, cval, exact):
    """N-d correlation over the taps in ``keep`` only (``w`` is zero elsewhere), for data
    with NaN/Inf, so that a sample under a dropped tap changes nothing, as in scipy.

    Finite kept taps: the fast method on the extended data with its non-finite samples
    replaced by 0, then each such sample's contribution ``w[j] * X[p]`` added to the
    outputs that read it through a kept tap ``j``.  An infinite kept tap would turn the
    replaced zeros into NaN, so then the sum runs tap by tap (NumPy, one pass per kept
    tap; Inf taps and non-finite data together are rare)."""
    from ._extend import window
    data = window(x, w.shape, out.shape, start, boundary, cval)   # extended, start 0
    taps = np.argwhere(keep)
    with np.errstate(invalid="ignore", over="ignore"):
        if not np.isfinite(w).all():
            out[...] = 0
            for j in taps:
                view = data[tuple(slice(a, a + m) for a, m in zip(j, out.shape))]
                out += w[tuple(j)] * view
            return out
        bad = ~np.isfinite(data)
        clean = np.where(bad, 0, data).astype(data.dtype, copy=False)
        _nd_correlate(clean, w, out, (0,) * x.ndim, "constant", 0.0, exact)
        pos = np.argwhere(bad)
        vals = data[bad]
        shape = np.asarray(out.shape)
        for j in taps:
            i = pos - j                       # out[i] reads data[i + j]
            ok = np.all((i >= 0) & (i < shape), axis=1)
            if ok.any():
                np.add.at(out, tuple(i[ok].T), w[tuple(j)] * vals[ok])
    return out


@dask_aware
@gpu_aware
def correlate(input, weights, output=None, mode="reflect", cval=0.0, origin=0, *,
              axes=None, device=None):
    """Multidimensional correlation (scipy.ndimage.correlate).

    ``weights`` has one axis per filtered axis (``axes``, by default all); ``origin`` may
    be a sequence. ``mode`` is a single mode (as in scipy).
    """
    return _correlate_or_convolve(input, weights, output, mode, cval, origin, False, axes)


@dask_aware
@gpu_aware
def convolve(input, weights, output=None, mode="reflect", cval=0.0, origin=0, *,
             axes=None, device=None):
    """Multidimensional convolution (scipy.ndimage.convolve): correlation with the
    weights reversed along every axis and the origin mirrored."""
    return _correlate_or_convolve(input, weights, output, mode, cval, origin, True, axes)

