"""Every check on user input, and the spec factories that turn a checked call into a frozen
spec the dispatcher runs: :class:`ConvSpec` (an N-d correlation, ``conv_spec``),
:class:`FilterSpec` (one step of scipy.ndimage's 1-D filter passes) and
:class:`LayerSpec` (a conv layer).

Kernels never validate: whatever reaches them was accepted here. Messages follow
scipy.signal's where scipy has one, and name the argument otherwise.
"""
from __future__ import annotations

import decimal
import math
import numbers
from dataclasses import dataclass

import numpy as np

from ._arrays import as_array  # noqa: F401  (re-exported: the public layer's converter)
from ._memo import LRU

MODES = ("full", "same", "valid")
METHODS = ("auto", "direct", "fft", "oa", "separable")

# scipy.signal's boundary names (convolve2d), plus scipy.ndimage's and numpy.pad's, mapped
# to the internal numpy.pad names. "reflect" follows scipy.ndimage (= numpy "symmetric");
# see docs/guide/boundaries.md for the full map between libraries.
BOUNDARY_ALIASES = {
    "fill": "constant", "pad": "constant", "constant": "constant",
    "grid-constant": "constant",
    "wrap": "wrap", "circular": "wrap", "grid-wrap": "wrap",
    "symm": "symmetric", "symmetric": "symmetric", "reflect": "symmetric",
    "grid-mirror": "symmetric",
    "mirror": "reflect",
    "nearest": "edge", "edge": "edge",
}
SIGNAL2D_BOUNDARIES = ("fill", "pad", "wrap", "circular", "symm", "symmetric")


@dataclass(frozen=True)
class ConvSpec:
    """A validated convolution, reduced to one correlation:

    out[i] = sum_j W[j] * X[start + i + j]   (W = the kernel, flipped and/or conjugated)

    computed in ``compute_dtype`` and returned as ``result_dtype``.
    """
    op: str                      # public operation, for the tuner key: "convolve", ...
    x_shape: tuple
    w_shape: tuple
    out_shape: tuple
    start: tuple
    compute_dtype: np.dtype
    result_dtype: np.dtype
    boundary: str = "constant"   # numpy.pad name
    cval: object = 0
    flip: bool = False           # convolution: correlate with the reversed kernel
    conj: bool = False           # correlation of complex data: conjugate the kernel
    reverse_out: bool = False    # scipy's swapped-input correlation: reverse the result...
    conj_out: bool = False       # ... and conjugate it (correlate does, correlate2d not)
    mode: str = "full"
    batch: tuple = ()            # axes where x and w are paired elementwise (fftconvolve's
                                 # non-convolved axes of equal length): no flip, no sum
    device: str = "cpu"          # where it runs (from the arrays' kind, _arrays.py)

    @property
    def ndim(self) -> int:
        return len(self.x_shape)

    @property
    def kind(self) -> str:
        """The registry's operation kind (kernels/__init__.py)."""
        return "batched" if self.batch else "correlate"

    def __hash__(self) -> int:
        # Specs are dictionary keys on every call's hot path: hash the fields once.
        h = self.__dict__.get("_hash")
        if h is None:
            h = hash((self.op, self.x_shape, self.w_shape, self.out_shape, self.start,
                      self.compute_dtype, self.result_dtype, self.boundary, self.cval,
                      self.flip, self.conj, self.reverse_out, self.conj_out, self.mode,
                      self.batch, self.device))
            object.__setattr__(self, "_hash", h)
        return h

    def __getstate__(self):
        # The cached hash and first-call class are per process (string hashes are salted
        # per process): a spec shipped to a Dask worker recomputes them there.
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_")}


@dataclass(frozen=True, eq=False)
class FilterSpec:
    """One step of scipy.ndimage's separable filters on a real array: one 1-D pass, or
    two passes on neighbouring axes fused in one sweep, in the order given (two weighted
    passes, or two boxes on axis a then a + 1, the last axis).
    ``passes`` holds ``(axis, start, boundary, weights, size)`` per pass (``weights``
    None: a box of ``size``, scipy's running sum)."""
    passes: tuple
    cval: float = 0.0
    device: str = "cpu"
    kind = "filter"


@dataclass(frozen=True)
class LayerSpec:
    """A conv layer on canonical (N, C, D, H, W) arrays: a valid correlation of the input
    zero-padded by ``pads`` ((lo, hi) per axis, None: already padded) with stride and
    dilation, ``groups`` channel groups. ``x_shape`` is the padded input's shape."""
    x_shape: tuple
    w_shape: tuple
    out_shape: tuple
    stride: tuple
    dilation: tuple
    groups: int
    dtype: np.dtype
    pads: tuple | None = None
    device: str = "cpu"
    kind = "layer"


@dataclass(frozen=True)
class LayerWeightSpec(LayerSpec):
    """The weight gradient of a conv layer (``conv*d_weight``), canonical 3-D layout:
    ``x_shape`` the input's shape (zero-padded by ``pads``), ``w_shape`` the gradient's
    (the weight's) shape, ``out_shape`` grad_output's shape; stride, dilation and groups
    those of the forward layer."""
    kind = "layer_weight"


@dataclass(frozen=True)
class Col2imSpec:
    """The scatter-add of a transposed convolution computed as a GEMM (``conv_transpose``
    and the input gradients, ``nn._adjoint_col2im``), canonical 3-D layout: ``y_shape``
    (N, O, KD, KH, KW, D, H, W) holds each input position's contribution to each tap,
    added into output (``out_shape``, (N, O, OD, OH, OW)) position
    ``i*stride - padding + tap*dilation`` per axis (outside the output: dropped)."""
    y_shape: tuple
    out_shape: tuple
    stride: tuple
    padding: tuple
    dilation: tuple
    dtype: np.dtype
    device: str = "cpu"
    kind = "col2im"


@dataclass(frozen=True)
class TransposedSpec:
    """A transposed convolution (``conv_transpose``, input gradients) computed directly,
    canonical 3-D layout: input (N, Cin, D, H, W) of ``x_shape``, weight (Cin,
    O/groups, KD, KH, KW) of ``w_shape``, output (N, O, OD, OH, OW) of ``out_shape``; input
    position i adds w * x into output ``i*stride - padding + tap*dilation`` per axis."""
    x_shape: tuple
    w_shape: tuple
    out_shape: tuple
    stride: tuple
    padding: tuple
    dilation: tuple
    groups: int
    dtype: np.dtype
    device: str = "cpu"
    kind = "layer_transposed"


def result_dtype(*arrays) -> np.dtype:
    # By dtype: GPU arrays are never handed to NumPy (the spec's arrays have ndim >= 1,
    # where NumPy's promotion of arrays and of their dtypes agree).
    return np.result_type(*(a.dtype for a in arrays))


def compute_dtype(dt: np.dtype) -> np.dtype:
    """The kernel dtype a result dtype is computed in (see KERNEL_DTYPES)."""
    if dt.kind in "biu":
        return np.dtype(np.int64)      # exact; wrap-around matches the narrower type
    if dt.kind == "c":
        return np.dtype(np.complex64) if dt.itemsize <= 8 else np.dtype(np.complex128)
    if dt.kind == "f":
        return np.dtype(np.float32) if dt.itemsize <= 4 else np.dtype(np.float64)
    raise ValueError(f"unsupported dtype {dt}")


def check_mode(mode) -> str:
    if not isinstance(mode, str) or mode not in MODES:
        raise ValueError("Acceptable mode flags are 'valid', 'same', or 'full'.")
    return mode


def check_method(method) -> str:
    if not isinstance(method, str) or method not in METHODS:
        raise ValueError("Acceptable method flags are 'auto', 'direct', 'fft', 'oa', "
                         "or 'separable'.")
    return method


def check_boundary(boundary, allowed=None) -> str:
    if isinstance(boundary, str):
        if allowed is not None and boundary in allowed:
            return BOUNDARY_ALIASES[boundary]
        if allowed is None and boundary in BOUNDARY_ALIASES:
            return BOUNDARY_ALIASES[boundary]
    if allowed is not None:
        raise ValueError("Acceptable boundary flags are 'fill', 'circular' "
                         "(or 'wrap'), and 'symmetric' (or 'symm').")
    raise ValueError(f"boundary must be one of {sorted(BOUNDARY_ALIASES)}, got {boundary!r}")


def check_fillvalue(fillvalue, dt: np.dtype, boundary: str = "constant"):
    """``fillvalue`` as a Python number of the result dtype ``dt`` (the value the constant
    boundary pads with), by scipy's rule (``convolve2d``, ``_sigtools``): the value is
    cast to the output type and a cast that cannot hold it raises
    ``ValueError: could not cast `fillvalue` directly to the output type``.

    * Integer and bool outputs: a finite real, truncated toward zero as a C cast does,
      that lies in the dtype's range (bool: 0 or 1). ``-1`` for uint8, ``2**40`` for
      int32, ``1e30``, NaN and Inf raise instead of wrapping (NumPy scalars too, where
      scipy would wrap them silently).
    * Floating outputs: a real whose cast stays finite (``1e300`` for float32 raises;
      scipy warns and pads with inf).
    * Real outputs reject complex values, even with a zero imaginary part (scipy does for
      Python complex numbers).
    * ``None`` is NaN for floating outputs (scipy's conversion) and raises for integers.
    * Numeric strings are parsed as NumPy does; anything that is not a number raises
      TypeError (a string that is not a number: ValueError, as scipy).
    * Only the constant boundary reads the fill: with any other ``boundary`` the value is
      neither checked nor used (scipy checks it only for ``boundary='fill'``).
    """
    if boundary != "constant":
        return 0
    dt = np.dtype(dt)
    fv = np.asarray(fillvalue)
    if fv.size == 0:
        raise ValueError("`fillvalue` cannot be an empty array.")
    if fv.size != 1:
        raise ValueError("`fillvalue` must be scalar or an array with one element.")
    value = _fill_number(fv.reshape(()).item(), dt)
    return _cast_fill(value, dt)


def _fill_number(v, dt: np.dtype):
    """A Python int, float or complex (or None) from one fillvalue element."""
    if v is None or isinstance(v, (bool, int, float, complex)):
        return v
    if isinstance(v, (str, bytes)):
        text = v.decode() if isinstance(v, bytes) else v
        for kind in (int, float, complex):
            try:
                return kind(text.strip())
            except ValueError:
                pass
        raise ValueError(f"fillvalue {v!r} is not a number")
    if isinstance(v, numbers.Integral):
        return int(v)
    if isinstance(v, (numbers.Real, decimal.Decimal)):
        return float(v)
    if isinstance(v, numbers.Complex):
        return complex(v)
    raise TypeError(f"fillvalue must be a number, not {type(v).__name__}")


def _cast_fill(value, dt: np.dtype):
    """``value`` cast to ``dt`` as a Python number; ValueError when the cast loses it."""
    def fail(why):
        return ValueError(f"could not cast `fillvalue` directly to the output type "
                          f"{dt.name}: {why}")

    if value is None:
        if dt.kind in "fc":
            return float("nan") if dt.kind == "f" else complex(float("nan"), 0.0)
        raise fail("None (NaN) has no integer value")
    if isinstance(value, complex) and dt.kind != "c":
        raise fail(f"{value!r} is complex")
    if dt.kind in "biu":
        if isinstance(value, float):
            if not math.isfinite(value):
                raise fail(f"{value!r} has no integer value")
            value = math.trunc(value)
        lo, hi = (0, 1) if dt.kind == "b" else (int(np.iinfo(dt).min), int(np.iinfo(dt).max))
        if not lo <= value <= hi:
            raise fail(f"{value!r} is outside [{lo}, {hi}]")
        return int(value)
    try:
        with np.errstate(over="raise"):
            cast = np.asarray(value, dtype=dt)
    except (OverflowError, FloatingPointError):
        raise fail(f"{value!r} overflows it") from None
    finite = (math.isfinite(value.real) and math.isfinite(value.imag)
              if isinstance(value, complex) else math.isfinite(value))
    if finite and not np.isfinite(cast):
        raise fail(f"{value!r} overflows it")
    return complex(cast.item()) if dt.kind == "c" else float(cast.item())


def check_out(out, shape, dtype):
    """``out=``: None, or a writeable numpy.ndarray of exactly ``shape`` and ``dtype``
    (TypeError for anything that is not an array, ValueError for a wrong one)."""
    if out is None:
        return None
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out must be a numpy.ndarray of shape {shape} and dtype {dtype}, "
                        f"got {type(out).__name__}")
    if out.shape != shape or out.dtype != dtype:
        raise ValueError(f"out must have shape {shape} and dtype {dtype}")
    if not out.flags.writeable:
        raise ValueError("out is read-only")
    return out


def swap_needed(mode: str, shape1, shape2, axes=None) -> bool:
    """scipy's rule: in 'valid' mode the larger input goes first (raises if neither is)."""
    if mode != "valid" or not shape1:
        return False
    axes = range(len(shape1)) if axes is None else axes
    ok1 = all(shape1[i] >= shape2[i] for i in axes)
    ok2 = all(shape2[i] >= shape1[i] for i in axes)
    if not (ok1 or ok2):
        raise ValueError("For 'valid' mode, one must be at least as large as the other in "
                         "every dimension")
    return not ok1


def window(mode: str, x_shape, w_shape, centre: str = "convolve"):
    """(out_shape, start) of the correlation with the (already flipped) kernel.

    'same' centring follows scipy: ``convolve``/``correlate`` crop the full result at
    (k-1)//2, which puts the window start at -(k//2); ``correlate2d`` centres at
    -((k-1)//2).
    """
    if mode == "full":
        return (tuple(n + k - 1 for n, k in zip(x_shape, w_shape)),
                tuple(-(k - 1) for k in w_shape))
    if mode == "valid":
        return tuple(max(n - k + 1, 0) for n, k in zip(x_shape, w_shape)), (0,) * len(x_shape)
    if centre == "correlate2d":
        return tuple(x_shape), tuple(-((k - 1) // 2) for k in w_shape)
    return tuple(x_shape), tuple(-(k // 2) for k in w_shape)


# -- the ConvSpec factory ---------------------------------------------------------------

# What each operation is as one correlation: flip the kernel (convolution) or conjugate
# it (correlation); when 'valid' swapped the inputs, scipy's correlate reverses and
# conjugates the result, correlate2d only reverses it; correlate2d centres 'same' its own
# way for even kernels.
OPS = {
    "convolve":    dict(flip=True, conj=False, swap_reverses=False, swap_conj=False,
                        centre="convolve"),
    "convolve2d":  dict(flip=True, conj=False, swap_reverses=False, swap_conj=False,
                        centre="convolve"),
    "correlate":   dict(flip=False, conj=True, swap_reverses=True, swap_conj=True,
                        centre="convolve"),
    "correlate2d": dict(flip=False, conj=True, swap_reverses=True, swap_conj=False,
                        centre="correlate2d"),
}


_SPEC_MEMO = LRU(1024)


def conv_spec(op, x, w, mode, *, boundary="constant", fillvalue=0, swapped=False,
              device="cpu") -> ConvSpec:
    """The ConvSpec of ``op(x, w, mode)`` (``op`` a key of ``OPS``; inputs already swapped
    when ``swapped``; ``boundary`` a checked numpy.pad name), memoised by everything it is
    computed from (the hot path of repeated calls)."""
    try:
        memo_key = (op, x.shape, w.shape, x.dtype, w.dtype, mode, boundary, fillvalue,
                    type(fillvalue), swapped, device)
        hit = _SPEC_MEMO.get(memo_key)
    except TypeError:            # an unhashable fillvalue (an array): no memo
        memo_key, hit = None, None
    if hit is not None:
        return hit
    rule = OPS[op]
    rt = result_dtype(x, w)
    out_shape, start = window(mode, x.shape, w.shape, rule["centre"])
    spec = ConvSpec(op=op, x_shape=x.shape, w_shape=w.shape, out_shape=out_shape,
                    start=start, compute_dtype=compute_dtype(rt), result_dtype=rt,
                    boundary=boundary, cval=check_fillvalue(fillvalue, rt, boundary),
                    flip=rule["flip"], conj=rule["conj"],
                    reverse_out=swapped and rule["swap_reverses"],
                    conj_out=swapped and rule["swap_conj"], mode=mode, device=device)
    if memo_key is not None:
        _SPEC_MEMO.put(memo_key, spec)
    return spec
