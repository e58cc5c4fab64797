"""Convolution layers with ``torch.nn.functional`` semantics on NumPy arrays.

``conv1d``/``conv2d``/``conv3d`` (plus torch.nn.ConvNd's ``padding_mode``),
``conv_transpose1d``/``2d``/``3d`` and the gradients ``conv{1,2,3}d_input`` /
``conv{1,2,3}d_weight`` (as ``torch.nn.grad``), on arrays in (N, C, ...) layout, float32 or
float64. Unbatched inputs (C, ...) are accepted where torch accepts them.

Errors. torch raises ``RuntimeError`` for bad shapes and dtypes; NumPy code expects
``ValueError``/``TypeError``. fastconv raises :class:`ConvShapeError` (a subclass of both
``ValueError`` and ``RuntimeError``) for shape, size and groups mismatches, and
:class:`ConvTypeError` (``TypeError`` and ``RuntimeError``) for dtype problems, so both
``except RuntimeError`` (code written for torch) and ``except ValueError``/``TypeError``
work. Bad argument values that torch rejects with ``ValueError`` (a padding string,
padding='same' with a stride, padding_mode) raise plain ``ValueError``. Messages follow
torch's wording where it names the sizes involved.

``method`` picks the kernel: "direct", "gemm", "fft", "winograd" (3x3 stride-1 layers) or
"auto" (a cost model, see ``fastconv.kernels.cpu.nn.choose_method``; FFT and Winograd
are skipped when the input holds NaN or Inf, which they would spread past the window).
Results agree with torch within 2e-4 x max|out| in float32 (Winograd F(4x4, 3x3) is the
least exact, ~1e-5 relative) and 1e-10 in float64. One caveat of "direct": kernel rows
are processed four taps at a time and a short group repeats a tap with weight 0, so an
Inf in that input position gives NaN (Inf * 0) where torch gives Inf; NaN stays local.

Threads: the thread count is numba's (``fastconv.threads(n)``); "gemm" and "winograd"
split their work into chunks run by that many Python threads, each calling BLAS
single-threaded (BLAS is limited to one thread through threadpoolctl for the duration
of the call, process-wide; without threadpoolctl they run serially).
"""
from __future__ import annotations

import itertools
import math
import numbers

import numpy as np

from ._arrays import array_kind
from ._dispatch import dispatch
from .kernels import methods
from ._validate import Col2imSpec, LayerSpec, LayerWeightSpec, TransposedSpec

__all__ = [
    "conv1d", "conv2d", "conv3d",
    "conv_transpose1d", "conv_transpose2d", "conv_transpose3d",
    "conv1d_input", "conv2d_input", "conv3d_input",
    "conv1d_weight", "conv2d_weight", "conv3d_weight",
    "ConvShapeError", "ConvTypeError", "METHODS", "PADDING_MODES",
]

METHODS = ("auto",) + methods("layer")
PADDING_MODES = ("zeros", "reflect", "replicate", "circular")
_NUMPY_PAD = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}
_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
_TORCH_DTYPE = {np.dtype(np.float32): "float", np.dtype(np.float64): "double"}


class ConvShapeError(ValueError, RuntimeError):
    """Shapes, sizes or groups that do not fit (torch raises RuntimeError here)."""


class ConvTypeError(TypeError, RuntimeError):
    """Unsupported or mismatched dtypes (torch raises RuntimeError here)."""


# -- argument parsing -------------------------------------------------------------------

def _size(shape):
    return "[" + ", ".join(str(s) for s in shape) + "]"


def _ints(value, nd, name, *, minimum=None, what=None):
    """An int or a sequence of nd ints -> tuple of nd ints (torch's _single/_pair/_triple
    plus the range check torch makes in the convolution)."""
    if isinstance(value, (numbers.Integral, np.integer)) and not isinstance(value, bool):
        vals = (int(value),) * nd
    else:
        try:
            seq = list(value)
        except TypeError:
            raise TypeError(f"{name} must be an int or a tuple of {nd} ints, got "
                            f"{type(value).__name__}") from None
        if not all(isinstance(v, (numbers.Integral, np.integer)) and not isinstance(v, bool)
                   for v in seq):
            raise TypeError(f"{name} must be an int or a tuple of {nd} ints, got {value!r}")
        if len(seq) == 1 and nd > 1:
            seq = seq * nd
        if len(seq) != nd:
            raise ConvShapeError(
                f"expected {name} to be a single integer value or a list of {nd} values to "
                f"match the convolution dimensions, but got {name}={_size(seq)}")
        vals = tuple(int(v) for v in seq)
    if minimum is not None and any(v < minimum for v in vals):
        raise ConvShapeError(what)
    return vals


def _array(a, name):
    if not isinstance(a, np.ndarray) and array_kind(a) == "cuda":
        raise TypeError(f"{name} is a GPU array ({type(a).__module__}.{type(a).__name__}); "
                        f"fastconv.nn's conv layers run on the CPU only (the CUDA kernels "
                        f"cover fastconv's signal and ndimage functions). Use "
                        f"torch.nn.functional on the GPU, or copy the arrays to the host "
                        f"(tensor.cpu().numpy(), cupy.asnumpy).")
    arr = np.asarray(a)
    if arr.dtype not in _DTYPES:
        raise ConvTypeError(f"{name} must be float32 or float64, got dtype {arr.dtype}")
    return arr


def _same_dtype(x, w, bias, fname):
    if w.dtype != x.dtype:
        raise ConvTypeError(
            f"{fname}: input type ({_TORCH_DTYPE[x.dtype]}) and weight type "
            f"({_TORCH_DTYPE[w.dtype]}) should be the same")
    if bias is not None and bias.dtype != x.dtype:
        raise ConvTypeError(
            f"{fname}: input type ({_TORCH_DTYPE[x.dtype]}) and bias type "
            f"({_TORCH_DTYPE[bias.dtype]}) should be the same")


def _groups(groups):
    if isinstance(groups, bool) or not isinstance(groups, (numbers.Integral, np.integer)):
        raise TypeError(f"groups must be an int, got {type(groups).__name__}")
    if groups <= 0:
        raise ConvShapeError("non-positive groups is not supported")
    return int(groups)


def _method(method):
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    return method


def _batched(x, nd, fname, kind="input"):
    """Add a batch axis to unbatched input; check the rank."""
    if x.ndim == nd + 2:
        return x, False
    if x.ndim == nd + 1:
        return x[None], True
    raise ConvShapeError(
        f"Expected {nd + 1}D (unbatched) or {nd + 2}D (batched) {kind} to {fname}, but got "
        f"{kind} of size: {_size(x.shape)}")


def _check_weight(w, nd, fname):
    if w.ndim != nd + 2:
        raise ConvShapeError(f"{fname}: weight must be {nd + 2}-dimensional, got weight of "
                             f"size {_size(w.shape)}")


def _check_channels(n, groups, shape):
    """torch's first weight check: dimension 0 (output channels; input channels for a
    transposed weight) holds at least ``groups`` channels, so a weight with 0 output
    channels raises instead of giving an empty result."""
    if n < groups:
        raise ConvShapeError(
            f"Given groups={groups}, expected weight to be at least {groups} at dimension 0, "
            f"but got weight of size {_size(shape)} instead")


def _check_bias(bias, n_out, w):
    if bias is None:
        return None
    if bias.ndim != 1 or bias.shape[0] != n_out:
        raise ConvShapeError(
            f"Given weight of size {_size(w.shape)}, expected bias to be 1-dimensional with "
            f"{n_out} elements, but got bias of size {_size(bias.shape)} instead")
    return bias


# -- the core: one valid, strided, dilated, grouped correlation -------------------------

def _canon(a, nd):
    """(N, C, *spatial[nd]) -> (N, C, D, H, W) view with leading spatial sizes of 1."""
    return a.reshape(a.shape[:2] + (1,) * (3 - nd) + a.shape[2:])


def _lead(values, nd, fill):
    """Per-axis values of an nd-D layer for the canonical 3-D layout: ``fill`` for the
    leading axes that _canon adds."""
    return (fill,) * (3 - nd) + tuple(values)


def _transposed_size(in_size, k, stride, padding, dilation, output_padding):
    """Spatial output size of a transposed convolution (torch's formula, per axis)."""
    return [(i - 1) * s - 2 * p + d * (kk - 1) + op + 1
            for i, s, p, d, kk, op in zip(in_size, stride, padding, dilation, k,
                                          output_padding)]


def _run(x, w, stride, dilation, groups, method, out_spatial, pads=None):
    """Valid correlation of x (N, C, *s) zero-padded by ``pads`` ((lo, hi) >= 0 per axis;
    None: x is already padded) -> (N, O, *out_spatial), through the dispatcher."""
    nd = x.ndim - 2
    x3 = _canon(x, nd)
    w3 = _canon(w, nd)
    st = _lead(stride, nd, 1)
    dl = _lead(dilation, nd, 1)
    out = np.empty((x.shape[0], w.shape[0]) + tuple(out_spatial), x.dtype)
    if out.size == 0:
        return out
    if x.shape[1] == 0 or w.shape[1] == 0:
        out[...] = 0
        return out
    out3 = _canon(out, nd)
    pads3 = None if pads is None else _lead(((int(lo), int(hi)) for lo, hi in pads), nd,
                                            (0, 0))
    x_shape = x3.shape if pads3 is None else x3.shape[:2] + tuple(
        s + lo + hi for s, (lo, hi) in zip(x3.shape[2:], pads3))
    spec = LayerSpec(x_shape=tuple(x_shape), w_shape=w3.shape, out_shape=out3.shape,
                     stride=st, dilation=dl, groups=groups, dtype=x.dtype, pads=pads3)
    dispatch(spec, x3, w3, method, out=out3)
    return out


def _add_bias(out, bias):
    if bias is not None:
        out += bias.reshape((1, -1) + (1,) * (out.ndim - 2))
    return out


def _pad_signed(x, pads, mode="constant"):
    """Pad (or crop, for negative amounts) the spatial axes of (N, C, ...)."""
    crop = tuple(slice(max(0, -lo), x.shape[2 + i] - max(0, -hi) if hi < 0 else None)
                 for i, (lo, hi) in enumerate(pads))
    x = x[(slice(None), slice(None)) + crop]
    widths = [(0, 0), (0, 0)] + [(max(0, lo), max(0, hi)) for lo, hi in pads]
    if all(p == (0, 0) for p in widths):
        return x
    if mode == "constant":
        out = np.zeros(tuple(s + lo + hi for s, (lo, hi) in zip(x.shape, widths)), x.dtype)
        out[tuple(slice(lo, lo + s) for s, (lo, _) in zip(x.shape, widths))] = x
        return out
    return np.pad(x, widths, mode=mode)


# -- conv{1,2,3}d -----------------------------------------------------------------------

def _padding(padding, nd, stride, dilation, ksize):
    """-> ((lo, hi) per axis). 'same' puts the odd extra element on the right, as torch."""
    if isinstance(padding, str):
        if padding == "valid":
            return [(0, 0)] * nd
        if padding == "same":
            if any(s != 1 for s in stride):
                raise ValueError("padding='same' is not supported for strided convolutions")
            pads = []
            for d, k in zip(dilation, ksize):
                total = d * (k - 1)
                pads.append((total // 2, total - total // 2))
            return pads
        raise ValueError(f"Invalid padding string {padding!r}, should be one of "
                         f"{{'valid', 'same'}}")
    p = _ints(padding, nd, "padding", minimum=0, what="negative padding is not supported")
    return [(v, v) for v in p]


def _convnd(nd, fname, input, weight, bias, stride, padding, dilation, groups,
            padding_mode, method):
    method = _method(method)
    x = _array(input, "input")
    w = _array(weight, "weight")
    b = None if bias is None else _array(bias, "bias")
    _same_dtype(x, w, b, fname)
    x, unbatched = _batched(x, nd, fname)
    _check_weight(w, nd, fname)
    groups = _groups(groups)
    stride = _ints(stride, nd, "stride", minimum=1,
                   what="non-positive stride is not supported")
    dilation = _ints(dilation, nd, "dilation", minimum=1,
                     what="dilation should be greater than zero")
    if padding_mode not in PADDING_MODES:
        raise ValueError(f"padding_mode must be one of {list(PADDING_MODES)}, but got "
                         f"padding_mode={padding_mode!r}")
    n_out, cg = w.shape[:2]
    _check_channels(n_out, groups, w.shape)
    if n_out % groups:
        raise ConvShapeError(
            f"Given groups={groups}, expected weight to be divisible by {groups} at "
            f"dimension 0, but got weight of size {_size(w.shape)} instead")
    if x.shape[1] != cg * groups:
        raise ConvShapeError(
            f"Given groups={groups}, weight of size {_size(w.shape)}, expected input"
            f"{_size(x.shape)} to have {cg * groups} channels, but got {x.shape[1]} "
            f"channels instead")
    b = _check_bias(b, n_out, w)
    ksize = w.shape[2:]
    pads = _padding(padding, nd, stride, dilation, ksize)
    padded = [s + lo + hi for s, (lo, hi) in zip(x.shape[2:], pads)]
    ext = [d * (k - 1) + 1 for d, k in zip(dilation, ksize)]
    if any(p < e for p, e in zip(padded, ext)):
        raise ConvShapeError(
            f"Calculated padded input size per channel: ({' x '.join(map(str, padded))}). "
            f"Kernel size: ({' x '.join(map(str, ext))}). Kernel size can't be greater "
            f"than actual input size")
    if padding_mode != "zeros":
        for s, (lo, hi) in zip(x.shape[2:], pads):
            if padding_mode == "reflect" and max(lo, hi) >= s and (lo or hi):
                raise ConvShapeError(
                    f"Argument #4: Padding size should be less than the corresponding "
                    f"input dimension, but got: padding ({lo}, {hi}) at dimension of input "
                    f"size {s} (padding_mode='reflect')")
            if padding_mode == "circular" and max(lo, hi) > s:
                raise ConvShapeError("Padding value causes wrapping around more than once "
                                     "(padding_mode='circular').")
        x = _pad_signed(x, pads, _NUMPY_PAD[padding_mode])
        pads = None
    out_sp = [(p - e) // s + 1 for p, e, s in zip(padded, ext, stride)]
    out = _run(x, w, stride, dilation, groups, method, out_sp, pads)
    _add_bias(out, b)
    return out[0] if unbatched else out


def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *,
           padding_mode="zeros", method="auto"):
    """1-D convolution layer, as ``torch.nn.functional.conv1d`` (cross-correlation).

    input (N, C, L) or (C, L); weight (O, C/groups, K); bias (O,) or None; padding an
    int, a 1-tuple, 'valid' or 'same'; padding_mode as ``torch.nn.Conv1d`` ('zeros',
    'reflect', 'replicate', 'circular'). Returns (N, O, L_out) of the input's dtype.
    """
    return _convnd(1, "conv1d", input, weight, bias, stride, padding, dilation, groups,
                   padding_mode, method)


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *,
           padding_mode="zeros", method="auto"):
    """2-D convolution layer, as ``torch.nn.functional.conv2d`` (cross-correlation).

    input (N, C, H, W) or (C, H, W); weight (O, C/groups, KH, KW); bias (O,) or None;
    stride, padding, dilation an int or a pair (padding also 'valid' or 'same');
    padding_mode as ``torch.nn.Conv2d``. Returns (N, O, H_out, W_out).
    """
    return _convnd(2, "conv2d", input, weight, bias, stride, padding, dilation, groups,
                   padding_mode, method)


def conv3d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *,
           padding_mode="zeros", method="auto"):
    """3-D convolution layer, as ``torch.nn.functional.conv3d`` (cross-correlation).

    input (N, C, D, H, W) or (C, D, H, W); weight (O, C/groups, KD, KH, KW); see conv2d.
    """
    return _convnd(3, "conv3d", input, weight, bias, stride, padding, dilation, groups,
                   padding_mode, method)


# -- transposed convolution and the gradients -------------------------------------------

def _transpose_weight(w, groups):
    """(Cin, O/g, *k) -> (O, Cin/g, *k) flipped in space: the correlation kernel of the
    adjoint."""
    cin, og = w.shape[:2]
    k = w.shape[2:]
    wt = w.reshape((groups, cin // groups, og) + k).swapaxes(1, 2)
    wt = wt.reshape((groups * og, cin // groups) + k)
    flip = (slice(None), slice(None)) + (slice(None, None, -1),) * len(k)
    return np.ascontiguousarray(wt[flip])


def _phase_taps(size, out_len, k, s, p, d):
    """One axis of a strided transposed convolution split by output phase: for each
    r < s, (taps, dil, (lo, hi), count) such that output r + s*q (q < count) is the
    stride-1 correlation, dilation ``dil``, of the input padded by (lo, hi) (negative:
    cropped) with the taps ``taps`` of w along this axis, reversed.

    Output y = i*s - p + a*d takes tap a from input i = q + (r + p - a*d)/s, so phase r
    uses the taps with a*d = r + p (mod s); consecutive ones are s/gcd(s, d) apart and
    their inputs d/gcd(s, d) apart."""
    res = []
    for r in range(s):
        count = len(range(r, out_len, s))
        taps = [a for a in range(k) if (a * d - r - p) % s == 0]
        if not taps or count == 0:
            res.append((taps, 1, (0, 0), count))
            continue
        dil = d // np.gcd(s, d)
        first = (r + p - taps[-1] * d) // s      # input offset of the last tap (q = 0)
        lo = -first
        hi = (count - 1) + first + (len(taps) - 1) * dil - (size - 1)
        res.append((taps, int(dil), (lo, hi), count))
    return res


def _adjoint_phases(x, w, stride, padding, output_padding, dilation, groups, method):
    """A transposed convolution with stride > 1 as prod(stride) stride-1 correlations,
    one per output phase, on the input as it is (no zeros inserted: the zero-insertion
    route multiplies s^d times more zeros than data). Each phase's result goes to its
    strided slice of the output."""
    nd = x.ndim - 2
    k = w.shape[2:]
    out_sp = _transposed_size(x.shape[2:], k, stride, padding, dilation, output_padding)
    axes = [_phase_taps(i, o, kk, s, p, d) for i, o, kk, s, p, d
            in zip(x.shape[2:], out_sp, k, stride, padding, dilation)]
    out = np.empty((x.shape[0], w.shape[1] * groups) + tuple(out_sp), x.dtype)
    # Kernel no larger than the stride (k <= s on every axis, groups 1: a U-Net's k2 s2,
    # wav2vec's k2 s2 input gradient): every phase is a 1x1 layer whose weight is
    # w[:, :, tap]^T. Moving the taps to the front once makes each phase's weight the
    # transpose of a contiguous (Cin, O) plane, which BLAS takes as it is: no take and
    # transpose per phase (1.9 of 3.0 ms on the wav2vec k2 s2 input gradient, N1).
    single = groups == 1 and all(len(t) <= 1 for ax in axes for t, _, _, _ in ax)
    if single:
        wk = np.ascontiguousarray(np.moveaxis(w, (0, 1), (-2, -1)))   # (*k, Cin, O)
    for phase in itertools.product(*(range(s) for s in stride)):
        parts = [axes[a][r] for a, r in enumerate(phase)]
        dst = out[(slice(None), slice(None)) + tuple(slice(r, None, s) for r, s
                                                     in zip(phase, stride))]
        if any(c == 0 for _, _, _, c in parts):
            continue
        if any(not t for t, _, _, _ in parts):
            dst[...] = 0                     # no tap reaches this phase
            continue
        if single:
            wt = wk[tuple(t[0] for t, _, _, _ in parts)].T.reshape(
                (w.shape[1], w.shape[0]) + (1,) * nd)
        else:
            ws = w
            for a, (taps, _, _, _) in enumerate(parts):
                ws = np.take(ws, taps, axis=2 + a)
            wt = _transpose_weight(ws, groups)
        # Negative pads crop the input (a view); the positive ones go to the launcher.
        crop = tuple(slice(max(0, -lo), size - max(0, -hi))
                     for (_, _, (lo, hi), _), size in zip(parts, x.shape[2:]))
        xc = x[(slice(None), slice(None)) + crop]
        pads = [(max(0, lo), max(0, hi)) for _, _, (lo, hi), _ in parts]
        res = _run(xc, wt, (1,) * nd, [dl for _, dl, _, _ in parts], groups, method,
                   [c for _, _, _, c in parts], pads)
        dst[...] = res
    return out


# Bytes of tap values (images x O x taps x input positions) one col2im step holds.
COL2IM_BYTES = 64 * 2**20


def _col2im_pays(x_shape, w_shape, stride):
    """Whether a transposed convolution (groups 1) runs as a GEMM then col2im
    (_adjoint_col2im) rather than as correlations with the transposed weight: when its
    outputs per input position, O x taps, are few against the input channels (a 1-D
    stem's input gradient: 512 channels back to 1 x 10 taps), or when the weight
    outweighs the tap values (the input gradient of a deep layer on a small image: a
    512-channel 3x3 weight is 9.4 MB, the values of 7x7 positions 0.9 MB), which the
    other route copies transposed and flipped first. A strided layer's other route is
    one correlation per output phase, each with its own weight copy and smaller GEMMs:
    there the values may outweigh the weight 8 times (measured, one thread: C128 28x28
    stride 2, batch 1, 3.4 against 4.1 ms; at 49 times, C64 56x56, batch 1, 2.0 against
    1.9 ms)."""
    cin, n_o = w_shape[:2]
    taps = math.prod(w_shape[2:])
    positions = x_shape[0] * math.prod(x_shape[2:])
    if 2 * n_o * taps <= cin or positions <= (8 if max(stride) > 1 else 1) * cin:
        return True
    # A strided layer: the other route is one GEMM of n_o rows per output phase, each
    # with its own weight copy, its result copied into a strided slice of the output.
    # Here the GEMM has n_o x taps rows and col2im gathers each output row once in
    # cache, at the price of writing and reading the tap values, taps / phases times the
    # output. Measured (one thread, CPU time, both routes' GEMMs in OpenBLAS), col2im
    # time / the other route's best: 3x3 stride 2 (2.25 taps a phase) 0.47-0.96 from
    # 16 to 256 channels, batch 1 and 8; 4x4 stride 2 (4 a phase) 0.70-0.98 from 64
    # input channels, but 0.99-1.21 from 32; 5x5 stride 2 (6.25) 0.68 at batch 1,
    # 1.52 at batch 8.
    phases = math.prod(stride)
    return phases > 1 and (taps <= 2.25 * phases or (taps <= 4 * phases and cin >= 64))


def _adjoint_col2im(x, w, stride, padding, output_padding, dilation, method):
    """A transposed convolution (groups 1) as one 1x1 layer, the GEMM y = w^T x of every
    (output channel, tap) at every input position, then each tap's values added into its
    strided place in the output (the "col2im" kernel), in steps of images that keep y
    within COL2IM_BYTES. w^T is a view: BLAS reads the transposed operand as it is."""
    nd = x.ndim - 2
    k = w.shape[2:]
    cin, n_o = w.shape[:2]
    w1 = w.reshape(cin, -1).T.reshape((-1, cin) + (1,) * nd)
    out_sp = _transposed_size(x.shape[2:], k, stride, padding, dilation, output_padding)
    out = np.empty((x.shape[0], n_o) + tuple(out_sp), x.dtype)

    per_image = n_o * math.prod(k) * math.prod(x.shape[2:]) * x.itemsize
    step = max(1, COL2IM_BYTES // max(1, per_image))
    # The 1x1 layer is a plain GEMM of n_o x taps rows: from 16 input channels BLAS is the
    # right tool, and tuning it among the other methods was a coin flip (3x3 stride 2 to
    # 32 channels, batch 8: tuned to direct, 8.6 ms, against gemm's 7.1).
    inner = "gemm" if method == "auto" and cin >= 16 else method
    for n0 in range(0, x.shape[0], step):
        n1 = min(x.shape[0], n0 + step)
        y = _run(x[n0:n1], w1, (1,) * nd, (1,) * nd, 1, inner, x.shape[2:])
        y = y.reshape((n1 - n0, n_o) + _lead(k, nd, 1) + _lead(x.shape[2:], nd, 1))
        dst = _canon(out[n0:n1], nd)
        spec = Col2imSpec(y_shape=y.shape, out_shape=dst.shape,
                          stride=_lead(stride, nd, 1), padding=_lead(padding, nd, 0),
                          dilation=_lead(dilation, nd, 1), dtype=x.dtype)
        dispatch(spec, y, None, out=dst)
    return out


def _adjoint_direct(x, w, stride, padding, output_padding, dilation, groups):
    """A strided transposed convolution of few channels per group (the input gradient of
    a stride-2 depthwise layer) in one kernel that adds each input value times each tap
    into its output (the "layer_transposed" kind): per output phase its correlation
    would be a separate call, its result copied into a strided slice (0.43 of 1.09 ms
    for a 96-channel depthwise 3x3 on 112x112, batch 1)."""
    nd = x.ndim - 2
    k = w.shape[2:]
    out_sp = _transposed_size(x.shape[2:], k, stride, padding, dilation, output_padding)
    out = np.empty((x.shape[0], w.shape[1] * groups) + tuple(out_sp), x.dtype)
    if out.size == 0:
        return out
    if x.size == 0:
        out[...] = 0
        return out

    x3, w3, out3 = _canon(x, nd), _canon(w, nd), _canon(out, nd)
    spec = TransposedSpec(x_shape=x3.shape, w_shape=w3.shape, out_shape=out3.shape,
                          stride=_lead(stride, nd, 1), padding=_lead(padding, nd, 0),
                          dilation=_lead(dilation, nd, 1), groups=groups, dtype=x.dtype)
    dispatch(spec, x3, w3, out=out3)
    return out


def _adjoint(x, w, stride, padding, output_padding, dilation, groups, method):
    """The transposed convolution of batched x (N, Cin, *s) with w (Cin, O/g, *k).
    Stride 1: pad by d*(k-1)-p (crop where negative, plus output_padding on the far
    side), then correlate with the flipped, channel-swapped kernel. Stride > 1: one
    such correlation per output phase (_adjoint_phases), except for an explicit
    Winograd, which needs the 3x3 kernel whole and so gets the zero-inserted input."""
    nd = x.ndim - 2
    k = w.shape[2:]
    n_img = x.shape[0]
    if (any(s > 1 for s in stride) and method in ("auto", "direct") and groups > 1
            and (x.shape[1] // groups) * w.shape[1] <= 4):
        return _adjoint_direct(x, w, stride, padding, output_padding, dilation, groups)
    if groups == 1 and method in ("auto", "gemm") and _col2im_pays(x.shape, w.shape, stride):
        return _adjoint_col2im(x, w, stride, padding, output_padding, dilation, method)
    if any(s > 1 for s in stride) and method != "winograd":
        return _adjoint_phases(x, w, stride, padding, output_padding, dilation, groups,
                               method)
    if any(s > 1 for s in stride):
        up = np.zeros((n_img, x.shape[1]) + tuple((i - 1) * s + 1 if i else 0
                                                  for i, s in zip(x.shape[2:], stride)),
                      x.dtype)
        up[(slice(None), slice(None)) + tuple(slice(None, None, s) for s in stride)] = x
        x = up
    pads = [(d * (kk - 1) - p, d * (kk - 1) - p + op)
            for d, kk, p, op in zip(dilation, k, padding, output_padding)]
    # Negative pads crop (a view); the positive ones go to the launcher, which folds
    # them into the copy it makes anyway.
    crop = tuple(slice(max(0, -lo), size - max(0, -hi))
                 for (lo, hi), size in zip(pads, x.shape[2:]))
    xc = x[(slice(None), slice(None)) + crop]
    pos = [(max(0, lo), max(0, hi)) for lo, hi in pads]
    wt = _transpose_weight(w, groups)
    out_sp = [s + lo + hi - d * (kk - 1)
              for s, (lo, hi), d, kk in zip(xc.shape[2:], pos, dilation, k)]
    return _run(xc, wt, (1,) * nd, dilation, groups, method, out_sp, pos)


def _transpose_args(nd, stride, padding, output_padding, dilation, groups):
    groups = _groups(groups)
    stride = _ints(stride, nd, "stride", minimum=1,
                   what="non-positive stride is not supported")
    if isinstance(padding, str):
        raise ValueError(f"padding must be an int or a tuple of {nd} ints for transposed "
                         f"convolution, got {padding!r}")
    padding = _ints(padding, nd, "padding", minimum=0,
                    what="negative padding is not supported")
    output_padding = _ints(output_padding, nd, "output_padding", minimum=0,
                           what="negative output padding is not supported")
    dilation = _ints(dilation, nd, "dilation", minimum=1,
                     what="dilation should be greater than zero")
    return groups, stride, padding, output_padding, dilation


def _conv_transposend(nd, fname, input, weight, bias, stride, padding, output_padding,
                      groups, dilation, method):
    method = _method(method)
    x = _array(input, "input")
    w = _array(weight, "weight")
    b = None if bias is None else _array(bias, "bias")
    _same_dtype(x, w, b, fname)
    x, unbatched = _batched(x, nd, fname)
    _check_weight(w, nd, fname)
    groups, stride, padding, output_padding, dilation = _transpose_args(
        nd, stride, padding, output_padding, dilation, groups)
    cin, og = w.shape[:2]
    _check_channels(cin, groups, w.shape)
    if og == 0:         # torch fails here too (RuntimeError from its oneDNN primitive)
        raise ConvShapeError(
            f"Given transposed=1, weight of size {_size(w.shape)}: expected at least 1 "
            f"output channel per group at dimension 1, but got 0")
    if cin % groups:
        raise ConvShapeError(
            f"Given groups={groups}, expected weight to be divisible by {groups} at "
            f"dimension 0, but got weight of size {_size(w.shape)} instead")
    if x.shape[1] != cin:
        raise ConvShapeError(
            f"Given transposed=1, weight of size {_size(w.shape)}, expected input"
            f"{_size(x.shape)} to have {cin} channels, but got {x.shape[1]} channels "
            f"instead")
    if any(op >= s and op >= d for op, s, d in zip(output_padding, stride, dilation)):
        raise ConvShapeError(
            f"output padding must be smaller than either stride or dilation, but got "
            f"output_padding={list(output_padding)}, stride={list(stride)}, "
            f"dilation={list(dilation)}")
    b = _check_bias(b, og * groups, w)
    k = w.shape[2:]
    out_sp = _transposed_size(x.shape[2:], k, stride, padding, dilation, output_padding)
    if any(o <= 0 for o in out_sp):
        raise ConvShapeError(
            f"Given input size per channel: ({' x '.join(map(str, x.shape[2:]))}). "
            f"Calculated output size per channel: ({' x '.join(map(str, out_sp))}). "
            f"Output size is too small")
    out = _adjoint(x, w, stride, padding, output_padding, dilation, groups, method)
    _add_bias(out, b)
    return out[0] if unbatched else out


def conv_transpose1d(input, weight, bias=None, stride=1, padding=0, output_padding=0,
                     groups=1, dilation=1, *, method="auto"):
    """As ``torch.nn.functional.conv_transpose1d``: weight (Cin, O/groups, K); output
    length (L-1)*stride - 2*padding + dilation*(K-1) + output_padding + 1."""
    return _conv_transposend(1, "conv_transpose1d", input, weight, bias, stride, padding,
                             output_padding, groups, dilation, method)


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0,
                     groups=1, dilation=1, *, method="auto"):
    """As ``torch.nn.functional.conv_transpose2d`` (note torch's argument order: groups
    before dilation); weight (Cin, O/groups, KH, KW)."""
    return _conv_transposend(2, "conv_transpose2d", input, weight, bias, stride, padding,
                             output_padding, groups, dilation, method)


def conv_transpose3d(input, weight, bias=None, stride=1, padding=0, output_padding=0,
                     groups=1, dilation=1, *, method="auto"):
    """As ``torch.nn.functional.conv_transpose3d``; weight (Cin, O/groups, KD, KH, KW)."""
    return _conv_transposend(3, "conv_transpose3d", input, weight, bias, stride, padding,
                             output_padding, groups, dilation, method)


def _shape_tuple(size, name):
    try:
        return tuple(int(s) for s in size)
    except TypeError:
        raise TypeError(f"{name} must be a sequence of ints, got {size!r}") from None


def _grad_input(nd, fname, input_size, weight, grad_output, stride, padding, dilation,
                groups, method):
    method = _method(method)
    w = _array(weight, "weight")
    go = _array(grad_output, "grad_output")
    _same_dtype(go, w, None, fname)
    _check_weight(w, nd, fname)
    size = _shape_tuple(input_size, "input_size")
    if len(size) != nd + 2:
        raise ConvShapeError(f"{fname}: input_size must have {nd + 2} entries (N, C, ...), "
                             f"got {list(size)}")
    if go.ndim != nd + 2:
        raise ConvShapeError(f"{fname}: grad_output must be {nd + 2}-dimensional, got size "
                             f"{_size(go.shape)}")
    groups, stride, padding, _, dilation = _transpose_args(
        nd, stride, padding, 0, dilation, groups)
    n_out, cg = w.shape[:2]
    _check_channels(n_out, groups, w.shape)
    if n_out % groups or size[1] != cg * groups or go.shape[1] != n_out \
            or go.shape[0] != size[0]:
        raise ConvShapeError(
            f"{fname}: input_size {list(size)}, weight of size {_size(w.shape)}, "
            f"grad_output of size {_size(go.shape)} and groups={groups} do not fit")
    k = w.shape[2:]
    output_padding = []
    for i, o, s, p, d, kk in zip(size[2:], go.shape[2:], stride, padding, dilation, k):
        lo = (o - 1) * s - 2 * p + d * (kk - 1) + 1
        if not lo <= i < lo + s:
            raise ConvShapeError(
                f"requested an input grad size of {list(size[2:])}, but valid sizes range "
                f"from {lo} to {lo + s - 1} (for a grad_output of {list(go.shape[2:])})")
        output_padding.append(i - lo)
    # The gradient with respect to the input is the transposed convolution (the adjoint).
    # Weight as a transposed-conv kernel: (O, Cg, *k) is (Cin', O'/g, *k) with Cin' = O.
    return _adjoint(go, w, stride, padding, output_padding, dilation, groups, method)


def _grad_weight(nd, fname, input, weight_size, grad_output, stride, padding, dilation,
                 groups, method):
    method = _method(method)
    x = _array(input, "input")
    go = _array(grad_output, "grad_output")
    _same_dtype(x, go, None, fname)
    size = _shape_tuple(weight_size, "weight_size")
    if len(size) != nd + 2 or x.ndim != nd + 2 or go.ndim != nd + 2:
        raise ConvShapeError(
            f"{fname}: expected {nd + 2}-dimensional input, weight_size and grad_output, "
            f"got {_size(x.shape)}, {list(size)}, {_size(go.shape)}")
    groups, stride, padding, _, dilation = _transpose_args(
        nd, stride, padding, 0, dilation, groups)
    n_out, cg = size[:2]
    _check_channels(n_out, groups, size)
    k = size[2:]
    expect = [(i + 2 * p - d * (kk - 1) - 1) // s + 1
              for i, p, d, kk, s in zip(x.shape[2:], padding, dilation, k, stride)]
    if n_out % groups or x.shape[1] != cg * groups or go.shape[:2] != (x.shape[0], n_out) \
            or list(go.shape[2:]) != expect:
        raise ConvShapeError(
            f"{fname}: input of size {_size(x.shape)}, weight_size {list(size)}, "
            f"grad_output of size {_size(go.shape)} and groups={groups} do not fit (the "
            f"convolution's output would be {[x.shape[0], n_out] + expect})")
    grad = np.empty(size, x.dtype)
    if grad.size == 0:
        return grad
    if x.shape[1] == 0 or go.size == 0:
        grad[...] = 0
        return grad
    if method in ("auto", "gemm") or (method == "direct" and cg == 1):
        # The weight-gradient kind: one GEMM over images, groups and taps (or the
        # depthwise kernel), the padding folded into the launcher's copy.
        spec = LayerWeightSpec(
            x_shape=x.shape[:2] + _lead((s + 2 * p for s, p in zip(x.shape[2:], padding)),
                                        nd, 1),
            w_shape=tuple(_canon(grad, nd).shape), out_shape=tuple(_canon(go, nd).shape),
            stride=_lead(stride, nd, 1), dilation=_lead(dilation, nd, 1), groups=groups,
            dtype=x.dtype, pads=_lead(((p, p) for p in padding), nd, (0, 0)))
        dispatch(spec, _canon(x, nd), _canon(go, nd), method, out=_canon(grad, nd))
        return grad
    # grad_w[o, c, j] = sum_{n, i} go[n, o, i] * xpad[n, g*Cg + c, i*s + j*d]: a valid
    # correlation of the padded input (images as channels, channels as images) with
    # grad_output as the kernel, stride and dilation swapping roles, one call per group.
    xp = _pad_signed(x, [(p, p) for p in padding])
    ext = [(o - 1) * s + d * (kk - 1) + 1 for o, s, d, kk in zip(expect, stride, dilation, k)]
    xp = xp[(slice(None), slice(None)) + tuple(slice(0, e) for e in ext)]
    og = n_out // groups
    for g in range(groups):
        xs = np.ascontiguousarray(xp[:, g * cg:(g + 1) * cg].swapaxes(0, 1))
        ws = np.ascontiguousarray(go[:, g * og:(g + 1) * og].swapaxes(0, 1))
        res = _run(xs, ws, dilation, stride, 1, method, k)        # (Cg, Og, *k)
        grad[g * og:(g + 1) * og] = res.swapaxes(0, 1)
    return grad


def conv1d_input(input_size, weight, grad_output, stride=1, padding=0, dilation=1,
                 groups=1, *, method="auto"):
    """Gradient of conv1d with respect to its input, as ``torch.nn.grad.conv1d_input``."""
    return _grad_input(1, "conv1d_input", input_size, weight, grad_output, stride,
                       padding, dilation, groups, method)


def conv2d_input(input_size, weight, grad_output, stride=1, padding=0, dilation=1,
                 groups=1, *, method="auto"):
    """Gradient of conv2d with respect to its input, as ``torch.nn.grad.conv2d_input``."""
    return _grad_input(2, "conv2d_input", input_size, weight, grad_output, stride,
                       padding, dilation, groups, method)


def conv3d_input(input_size, weight, grad_output, stride=1, padding=0, dilation=1,
                 groups=1, *, method="auto"):
    """Gradient of conv3d with respect to its input, as ``torch.nn.grad.conv3d_input``."""
    return _grad_input(3, "conv3d_input", input_size, weight, grad_output, stride,
                       padding, dilation, groups, method)


def conv1d_weight(input, weight_size, grad_output, stride=1, padding=0, dilation=1,
                  groups=1, *, method="auto"):
    """Gradient of conv1d with respect to its weight, as ``torch.nn.grad.conv1d_weight``."""
    return _grad_weight(1, "conv1d_weight", input, weight_size, grad_output, stride,
                        padding, dilation, groups, method)


def conv2d_weight(input, weight_size, grad_output, stride=1, padding=0, dilation=1,
                  groups=1, *, method="auto"):
    """Gradient of conv2d with respect to its weight, as ``torch.nn.grad.conv2d_weight``."""
    return _grad_weight(2, "conv2d_weight", input, weight_size, grad_output, stride,
                        padding, dilation, groups, method)


def conv3d_weight(input, weight_size, grad_output, stride=1, padding=0, dilation=1,
                  groups=1, *, method="auto"):
    """Gradient of conv3d with respect to its weight, as ``torch.nn.grad.conv3d_weight``."""
    return _grad_weight(3, "conv3d_weight", input, weight_size, grad_output, stride,
                        padding, dilation, groups, method)
