"""FFT and overlap-add (overlap-save) correlation on the CPU, through scipy.fft.

Launcher contract (as ``direct.correlate``)::

    correlate_fft(x, w, out, start, boundary="constant", cval=0, *, nonfinite="local")
    correlate_oa(x, w, out, start, boundary="constant", cval=0, *, block=None,
                 nonfinite="local")

compute out[i] = sum_j w[j] * X[start + i + j], X being ``x`` extended by ``boundary``.

How (per axis: n input, k taps, m outputs, s start):

* Only the outputs whose window touches the data are transformed; the rest are the
  constant fill (zero).  The data those outputs read, ``core``, is a view of ``x``.
* The kernel is placed in a length-L buffer at circular positions ``-(r + j) mod L``
  (r = offset of the first window inside ``core``), so the circular convolution's
  outputs 0..m-1 are the wanted ones: no shift, no wrap-around in the crop, and the input
  needs no explicit padding (scipy.fft's ``s=`` zero-pads it inside pocketfft).
  L >= min(c, m) + k - 1 makes this exact ('valid' needs only L >= n).
* Real input uses rfftn/irfftn (float32 stays complex64 end to end); the kernel spectrum
  is a pruned transform (the last axis over the k nonzero rows only); the spectral
  product is in place; the only full-size arrays are the input spectrum and the inverse.
* Overlap-add works in blocks of FFT length L (overlap-save: each block computes
  L - k + 1 outputs from an input window of L samples, so outputs are written once, never
  accumulated).  Interior windows are strided views of ``x`` (no copy); blocks are
  transformed in batches of at most ``OA_CHUNK_BYTES`` of spectra, so the extra memory is
  O(block), not O(input).
* Block lengths are powers of two or 3 * 2**p (pocketfft's fastest); per axis the
  outputs split into whole blocks plus a tail with its own shorter transform.
* 3-D kernels with <= 8 taps along axis 0 skip the axis-0 transforms: 2-D spectra of the
  planes, a direct sum over the taps in the frequency domain, inverse 2-D transforms.
* ``spectra=`` (a dict owned by the caller for one kernel) keeps kernel spectra between
  calls, for plan objects.
* Non-constant boundaries (and a non-finite ``cval``) materialise the extended window
  first.  A finite nonzero ``cval`` never enters a transform: ``x`` is transformed with a
  zero fill and each edge output gets ``cval * (sum of its taps that read the fill)``
  added, from prefix sums of the kernel (``_add_fill``); interior outputs get nothing.

Numerical contract:

* Non-finite inputs stay local (``nonfinite="local"``, the default).  A cheap check (the
  data's max and min are finite iff every value is; cheaper than a sum) finds them; then
  the transform runs on the data with non-finite values replaced by 0 and each non-finite sample's contribution
  ``w[j] * x[p]`` is added back to the outputs whose window holds it, so exactly those
  outputs become Inf/NaN, as with the direct method.  Non-finite kernel taps (every output
  is affected) and inputs that are mostly non-finite go to the direct method.
  ``nonfinite="ignore"`` skips the check (NaN then spreads over the transform).
* int64 runs in float64 and is rounded back; it is exact only inside ``fft_is_exact``
  (scipy's guard); outside it the launcher uses the direct method.  Integers always
  transform with scipy's pocketfft (the bound was measured for it); float data uses the
  scipy.fft backend ``_fftsize.backend_scope`` chooses (mkl_fft, pyFFTW, where installed
  and faster), in a thread-local scope around the launcher's own transforms only.
* Error bound of float data against the exact result (tested):
  ``|fft - exact| <= fft_error_bound(x, w, dtype)`` elementwise, see that function.
  Outputs that do not read a constant fill do not depend on ``cval`` at all (the bound
  then holds with ``cval=0``); those that do carry the fill term's own rounding, as in
  the direct method.
* Huge magnitudes never overflow inside the transforms: every intermediate value is
  bounded by ``L**2 * max|x| * sum|w|`` (L <= the product of ``2 * (n + k)``); when that
  could come within ``OVERFLOW_MARGIN`` of the dtype's largest value
  (``_fftsize.may_overflow``: from about 1e289 in float64 and 1e20 in float32 for a
  2048 x 2048 image and a 15 x 15 kernel of unit-size taps), data and kernel are scaled
  by powers of two to magnitudes below 1 (exact), transformed, and the result scaled
  back.  So finite data gives finite outputs within the error bound wherever the exact
  result is finite, and Inf where it overflows the dtype, as the direct method does;
  never NaN over the whole output.
  Under ``nonfinite="ignore"`` the guard is skipped too.
"""
from __future__ import annotations

import contextvars
import itertools
import math

import numpy as np
import scipy.fft as sp_fft
from numpy.lib.stride_tricks import as_strided

from ..._config import first_call_mode
from ..._fftsize import (OA_CHUNK_BYTES, backend_scope, fast_len, fft_is_exact, fft_workers,
                          may_overflow, oa_block_shape, pocketfft_scope)
from ..._extend import window
from ..._finite import all_finite as _all_finite



def _direct():
    """The direct kernels, for the fallbacks only (integers past the exactness bound,
    non-finite kernels, mostly non-finite data): loaded on first use, since that module
    loads numba (0.2-0.3 s) and an FFT call has no other need of it."""
    from . import direct
    return direct


__all__ = ["correlate_fft", "correlate_oa", "correlate_batched", "fft_is_exact",
           "fft_error_bound", "NONFINITE_POLICIES"]

NONFINITE_POLICIES = ("local", "ignore")


# -- guards and error bounds ----------------------------------------------------------------

def fft_error_bound(x, w, dtype=None, cval=0, out_shape=None):
    """Documented elementwise error bound of FFT/OA correlation against the exact result.

    ``eps * (4 + 2 * log2(L)) * ||w||_2 * sqrt(k) * max(|x|, |cval|)`` with L the
    transform size (from x's and w's shapes, or the output's if larger), k = w.size and
    eps the dtype's machine epsilon: the rounding of the forward and
    inverse transforms grows like log2(L) relative to the data's L2 norm (Higham,
    "Accuracy and Stability of Numerical Algorithms", 24.1), measured against the largest
    possible output magnitude of a window.  float32: about 1e-5 of max|x| * sum|w| for
    typical images; float64: about 1e-14.
    """
    x = np.asarray(x)
    w = np.asarray(w)
    dt = np.dtype(dtype) if dtype is not None else np.result_type(x, w)
    if dt.kind in "biu":
        return 0.0
    eps = np.finfo(dt).eps
    shape = x.shape if out_shape is None else np.maximum(x.shape, out_shape)
    L = max(int(np.prod([n + k - 1 for n, k in zip(shape, w.shape)])), 2)
    xmax = max(float(np.max(np.abs(x))) if x.size else 0.0, abs(complex(cval)))
    # ||w||_2 scaled by max|w| first: the plain sum of squares overflows for taps beyond
    # about 1e154 (an Inf bound says nothing)
    wabs = np.abs(w.ravel().astype(np.complex128))
    wmax = float(wabs.max()) if wabs.size else 0.0
    wnorm = wmax * float(np.linalg.norm(wabs / wmax)) if wmax > 0 else 0.0
    return eps * (4 + 2 * math.log2(L)) * wnorm * math.sqrt(w.size) * xmax


# -- launchers --------------------------------------------------------------------------------

def correlate_fft(x, w, out, start, boundary="constant", cval=0, *, nonfinite="local",
                  spectra=None):
    """Whole-array FFT correlation; see the module docstring for the contract.

    ``spectra``: optional dict owned by the caller for ONE kernel ``w`` (a plan object);
    kernel spectra are stored there and reused by later calls with the same sizes.
    """
    with backend_scope(w.ndim):
        return _with_spectra(spectra, _correlate, x, w, out, start, boundary, cval, None,
                             nonfinite)


def correlate_oa(x, w, out, start, boundary="constant", cval=0, *, block=None,
                 nonfinite="local", spectra=None):
    """Overlap-add (overlap-save) correlation in blocks of FFT shape ``block`` (per axis;
    None chooses by ``_fftsize.oa_block_shape``); see the module docstring.
    ``spectra`` as in :func:`correlate_fft`."""
    with backend_scope(w.ndim):
        return _with_spectra(spectra, _correlate, x, w, out, start, boundary, cval,
                             "auto" if block is None else block, nonfinite)


def correlate_batched(x, w, out, start, batch):
    """``correlate_oa`` over the axes not in ``batch``; along the ``batch`` axes x, w and
    out have equal lengths and pair elementwise (scipy.signal.fftconvolve's broadcast
    axes). Finite data: one batched rfftn/irfftn pair over the convolved axes (the spectra
    multiply elementwise along the batch axes). Non-finite data: one NaN-local launch per
    index along the batch axes."""
    conv = [a for a in range(x.ndim) if a not in batch]
    if _all_finite(x) and _all_finite(w):
        with backend_scope(len(conv)):
            _batched_whole(x, w, out, conv, start)
        return out
    cstart = tuple(start[a] for a in conv)
    for idx in itertools.product(*(range(out.shape[a]) for a in batch)):
        sel = [slice(None)] * x.ndim
        for a, i in zip(batch, idx):
            sel[a] = i
        sel = tuple(sel)
        correlate_oa(x[sel], w[sel], out[sel], cstart)
    return out


def _batched_whole(x, w, out, conv, start):
    """The batched correlation by one transform pair: the circular correlation with
    ``w`` is the convolution with ``w`` reversed along ``conv``; that full convolution,
    cropped to the window (output i on axis a is full index i + start + k - 1)."""
    workers = fft_workers()
    h = w[tuple(slice(None, None, -1) if a in conv else slice(None) for a in range(w.ndim))]
    L = [sp_fft.next_fast_len(x.shape[a] + h.shape[a] - 1, True) for a in conv]
    if out.dtype.kind == "c":
        fwd, inv = sp_fft.fftn, sp_fft.ifftn
    else:
        fwd, inv = sp_fft.rfftn, sp_fft.irfftn
    spec = fwd(x, s=L, axes=conv, workers=workers)
    spec *= fwd(h, s=L, axes=conv, workers=workers)
    full = inv(spec, s=L, axes=conv, workers=workers, overwrite_x=True)
    crop = [slice(None)] * x.ndim
    for a in conv:
        lo = start[a] + h.shape[a] - 1
        crop[a] = slice(lo, lo + out.shape[a])
    out[...] = full[tuple(crop)]


# The caller's kernel-spectrum cache for the call in progress (per thread/context).
_SPECTRA = contextvars.ContextVar("fastconv_fft_spectra", default=None)


def _with_spectra(spectra, fn, *args):
    if spectra is None:
        return fn(*args)
    token = _SPECTRA.set(spectra)
    try:
        return fn(*args)
    finally:
        _SPECTRA.reset(token)


def _correlate(x, w, out, start, boundary, cval, block, nonfinite):
    if out.size == 0:
        return out
    if w.size == 0 or x.size == 0 and boundary != "constant":
        out[...] = 0
        return out
    if out.dtype.kind in "iu":
        if not fft_is_exact(x, w, cval, boundary, out.shape):
            return _direct().correlate(x, w, out, start, boundary, cval)
        tmp = np.empty(out.shape, np.float64)
        # pocketfft for integers: fft_is_exact's error bound is the one measured for it
        with pocketfft_scope():
            _correlate(x.astype(np.float64), w.astype(np.float64), tmp, start, boundary,
                       float(cval), block, "ignore")
        np.rint(tmp, out=tmp)
        out[...] = tmp
        return out

    start = tuple(int(s) for s in start)
    if (boundary == "constant" and cval != 0 and np.isfinite(cval)
            and (nonfinite == "ignore" or _all_finite(w))):
        # A constant fill is linear: transform x with a zero fill, then add each output's
        # fill term cval * (sum of the taps that read outside x) exactly.  The fill never
        # enters a transform, so it neither costs a padded copy nor spreads its magnitude
        # (rounding, overflow) into outputs that do not read it.
        _correlate(x, w, out, start, boundary, 0, block, nonfinite)
        _add_fill(w, x.shape, out, start, cval)
        return out

    # The data the outputs read (D) and where output 0's window starts in it.
    if boundary == "constant" and cval == 0:
        data = x
    else:
        data = window(x, w.shape, out.shape, start, boundary, cval)
        start = (0,) * x.ndim

    # Outputs whose window misses the data entirely are zero; trim them away.
    keep, core, offset = [], [], []
    for n, k, m, s in zip(data.shape, w.shape, out.shape, start):
        lo_i, hi_i = max(0, -(s + k - 1)), min(m, n - s)
        if hi_i <= lo_i:
            out[...] = 0
            return out
        keep.append(slice(lo_i, hi_i))
        st = s + lo_i
        lo, hi = max(0, st), min(n, st + (hi_i - lo_i) + k - 1)
        core.append(slice(lo, hi))
        offset.append(st - lo)              # in [-(k-1), 0]
    keep, core = tuple(keep), tuple(core)
    if any(sl != slice(0, m) for sl, m in zip(keep, out.shape)):
        _zero_outside(out, keep)
    sub = out[keep]
    dcore = data[core]

    bad = None
    scaled = False
    if nonfinite != "ignore":
        if not _all_finite(w):
            return _direct_all(x, w, out, start, data, boundary, cval)
        finite, amax = _finite_max(dcore)
        if not finite:
            bad = np.nonzero(~np.isfinite(dcore))
            if len(bad[0]) * 4 > sub.size:   # mostly non-finite: the fix would cost more
                return _direct_all(x, w, out, start, data, boundary, cval)
            amax = _finite_max(dcore[np.isfinite(dcore)])[1]
        scaled = may_overflow(amax, w, dcore.shape, out.dtype)

    real = out.dtype.kind != "c"
    if block is not None:
        if block == "auto":
            block = oa_block_shape(sub.shape, w.shape, real)
        block = tuple(max(int(L), int(k)) for L, k in zip(block, w.shape))
    if scaled:
        _transform_rescaled(dcore, w, sub, offset, block, real, bad is not None, amax)
    else:
        _transform(dcore, w, sub, offset, block, real, bad is not None)
    if bad is not None:
        _add_nonfinite(dcore, bad, w, sub, offset)
    return out


def _transform(dcore, w, sub, offset, block, real, has_bad):
    """``sub`` = the correlation of the finite part of ``dcore`` with ``w``: one whole
    transform (``block`` None) or overlap-save blocks of FFT shape ``block``."""
    if block is None:
        _fft_whole(dcore, w, sub, offset, real, has_bad)
    else:
        _blocked(dcore, w, sub, offset, block, real, has_bad)


def _finite_max(a):
    """(every value finite, largest magnitude, up to a factor sqrt(2) for complex) from
    a max and a min per real part: NaN and Inf show in them, and the two passes cost
    less than one ``sum`` (no pairwise summation), so the non-finite check costs no more
    than before and also sizes the data for the overflow guard."""
    if a.size == 0 or a.dtype.kind not in "fc":
        return True, 0.0
    parts = (a.real, a.imag) if a.dtype.kind == "c" else (a,)
    with np.errstate(invalid="ignore"):
        ends = [float(f(p)) for p in parts for f in (np.max, np.min)]
    if not all(math.isfinite(v) for v in ends):
        return False, math.inf
    return True, max(abs(v) for v in ends) * (math.sqrt(2.0) if len(parts) == 2 else 1.0)


def _transform_rescaled(dcore, w, sub, offset, block, real, has_bad, amax):
    """The transform of data and kernel scaled by powers of two to magnitudes below 1,
    then scaled back: exact scalings (the data's tiny values may lose bits below the
    error bound, which is relative to max|x|), so the result is the unscaled one's up
    to the usual error bound, and no sum inside the transforms can overflow (they stay
    below L**2 * w.size).  Outputs whose exact value exceeds the dtype's range become
    Inf when scaled back, as with the direct method."""
    ex = int(np.frexp(amax)[1]) if amax > 0 else 0
    ew = _exponent(w)
    data = _ldexp(dcore, -ex)
    ws = _ldexp(w, -ew)
    token = _SPECTRA.set(None)      # a caller's cached spectrum is of the unscaled kernel
    try:
        _transform(data, ws, sub, offset, block, real, has_bad)
    finally:
        _SPECTRA.reset(token)
    with np.errstate(over="ignore", invalid="ignore"):
        _ldexp(sub, ex + ew, out=sub)


def _exponent(a) -> int:
    """e with max|a| < 2**e (0 for an empty or all-zero array)."""
    if a.size == 0:
        return 0
    m = float(np.max(np.abs(a)))
    return int(np.frexp(m)[1]) if m > 0 else 0


def _ldexp(a, e, out=None):
    """``a * 2**e`` computed exactly (np.ldexp; complex arrays part by part), into ``out``
    or a new array of ``a``'s dtype."""
    if out is None:
        out = np.empty(a.shape, a.dtype)
    if a.dtype.kind == "c":
        np.ldexp(a.real, e, out=out.real)
        np.ldexp(a.imag, e, out=out.imag)
    else:
        np.ldexp(a, e, out=out)
    return out


def _add_fill(w, x_shape, out, start, cval):
    """out[i] += cval * (sum of w[j] over the taps j whose sample start + i + j lies
    outside x), for the outputs whose window leaves x; the others get nothing (exactly).

    The taps inside x form a box per output, so the outside sum is sum(w) minus a box sum
    read from w's prefix sums (a difference of two prefix rows per axis), in float64
    (complex128).  The edge outputs are visited as slabs: inside x along the axes before
    ``a`` (there the box is the whole axis, so the sum does not depend on the index and
    is broadcast), at an edge along ``a``, anything after ``a``."""
    nd = w.ndim
    acc = np.complex128 if w.dtype.kind == "c" or isinstance(cval, complex) else np.float64
    pre = np.zeros(tuple(k + 1 for k in w.shape), acc)   # pre[i] = sum of w[:i0, :i1, ..]
    pre[(slice(1, None),) * nd] = w
    for d in range(nd):
        np.cumsum(pre, axis=d, out=pre)
    total = pre[tuple(w.shape)]
    inner = []          # per axis, the run [i0, i1) of outputs whose taps all read x
    for n, k, m, s in zip(x_shape, w.shape, out.shape, start):
        i0 = min(max(0, -s), m)
        inner.append((i0, max(i0, min(m, n - s - k + 1))))

    def taps_inside(d, i):
        """[lo, hi): the taps along axis d that read x, for outputs i."""
        n, k, s = x_shape[d], w.shape[d], start[d]
        lo = np.clip(-(s + i), 0, k)
        return lo, np.clip(n - s - i, lo, k)

    for a in range(nd):
        if any(i1 <= i0 for i0, i1 in inner[:a]):
            break                   # every output is on an earlier axis's edge slabs
        part = pre[tuple(w.shape[:a])]          # axes before a: the whole axis
        for e0, e1 in ((0, inner[a][0]), (inner[a][1], out.shape[a])):
            if e1 <= e0:
                continue
            bounds = [taps_inside(a, np.arange(e0, e1))]
            bounds += [taps_inside(d, np.arange(out.shape[d])) for d in range(a + 1, nd)]
            box = part          # box sums, one axis at a time: P[hi] - P[lo]
            for t, (lo, hi) in enumerate(bounds):
                box = np.take(box, hi, axis=t) - np.take(box, lo, axis=t)
            region = tuple(slice(*inner[d]) for d in range(a)) + (slice(e0, e1),)
            with np.errstate(over="ignore", invalid="ignore"):
                out[region] += (cval * (total - box)).astype(out.dtype, copy=False)


def _direct_all(x, w, out, start, data, boundary, cval):
    # ``data`` is either x itself (constant 0) or the materialised window (start 0).
    if data is x:
        return _direct().correlate(x, w, out, start, boundary, cval)
    return _direct().correlate(data, w, out, (0,) * x.ndim, "constant", 0)


def _zero_outside(out, keep):
    """Zero the slabs of ``out`` outside the box ``keep`` (no full-size temporary)."""
    for a, sl in enumerate(keep):
        pre = (slice(None),) * a
        out[pre + (slice(0, sl.start),)] = 0
        out[pre + (slice(sl.stop, None),)] = 0


# -- whole-array FFT ---------------------------------------------------------------------------

def _kernel_spectrum(w, L, offset, real, part=None):
    """Spectrum of the length-L buffer v with v[-(r + j) mod L] = w[j] per axis (pruned: each
    axis is transformed after the later axes, only over the rows that are nonzero so far).
    Reused from the caller's ``spectra`` dict when one is in force. ``part`` names which
    piece of the caller's kernel ``w`` is (a plane index): pieces of one kernel share
    shape and dtype, and without it their spectra would share one cache entry."""
    cache = _SPECTRA.get()
    key = (part, tuple(L), tuple(offset), real, w.shape, w.dtype.str)
    if cache is not None and key in cache:
        return cache[key]
    spec = _kernel_spectrum_compute(w, L, offset, real)
    if cache is not None:
        cache[key] = spec
    return spec


def _kernel_spectrum_compute(w, L, offset, real):
    workers = fft_workers()
    nd = w.ndim
    idx = [(-(r + np.arange(k))) % n for r, k, n in zip(offset, w.shape, L)]
    last = np.zeros(w.shape[:-1] + (L[-1],), w.dtype)
    last[..., idx[-1]] = w
    spec = (sp_fft.rfft if real else sp_fft.fft)(last, axis=-1, workers=workers,
                                                  overwrite_x=True)
    for a in range(nd - 2, -1, -1):
        shape = spec.shape[:a] + (L[a],) + spec.shape[a + 1:]
        grown = np.zeros(shape, spec.dtype)
        grown[(slice(None),) * a + (idx[a],)] = spec
        spec = sp_fft.fft(grown, axis=a, workers=workers, overwrite_x=True)
    return spec


def _blocked(dcore, w, sub, offset, L, real, has_bad):
    """Overlap-save with FFT lengths L: per axis, the outputs split into a main run of
    whole blocks (L - k + 1 outputs each) and a tail that gets its own, shorter transform,
    so block lengths can stay on pocketfft's fastest sizes (powers of two) without a
    mostly wasted last block.  A region that is one block along every axis is a single
    transform of a view of the data."""
    segs = []
    for Lb, k, m in zip(L, w.shape, sub.shape):
        b = Lb - k + 1
        if b >= m:
            segs.append([(0, m, None)])
            continue
        main = (m // b) * b
        segs.append([(0, main, Lb)] + ([(main, m, None)] if main < m else []))
    for combo in itertools.product(*segs):
        sub_r = sub[tuple(slice(r0, r1) for r0, r1, _ in combo)]
        off_r = tuple(o + r0 for o, (r0, _, _) in zip(offset, combo))
        if all(Lb is None or Lb - k + 1 >= r1 - r0
               for (r0, r1, Lb), k in zip(combo, w.shape)):
            _fft_whole(dcore, w, sub_r, off_r, real, has_bad,
                       tuple(Lb for _, _, Lb in combo))
        else:
            Lr = tuple(Lb if Lb is not None else fast_len(r1 - r0 + k - 1, real)
                       for (r0, r1, Lb), k in zip(combo, w.shape))
            _oa_blocks(dcore, w, sub_r, off_r, Lr, real, has_bad)


def _fft_whole(dcore, w, sub, offset, real, has_bad, L=None):
    """One transform for all of ``sub``: output i reads data [offset+i, offset+i+k).
    ``L`` (per axis, None = choose) must be >= min(c, m) + k - 1."""
    nd = w.ndim
    core, off = [], []
    for n, k, m, o in zip(dcore.shape, w.shape, sub.shape, offset):
        lo, hi = max(0, o), min(n, o + m + k - 1)
        core.append(slice(lo, max(lo, hi)))
        off.append(o - lo)
    dcore = dcore[tuple(core)]
    offset = tuple(off)
    if dcore.size == 0:
        sub[...] = 0
        return
    # 5-smooth lengths on every axis of a real transform (scipy's choice): pocketfft's
    # radix-7/11 passes are markedly slower for the column transforms.
    L = tuple(Lg if Lg is not None else fast_len(min(c, m) + k - 1, real)
              for Lg, c, k, m in zip(L or (None,) * nd, dcore.shape, w.shape, sub.shape))
    axes = tuple(range(nd))
    workers = fft_workers()
    src = dcore
    if has_bad:
        src = np.where(np.isfinite(dcore), dcore, 0).astype(dcore.dtype, copy=False)
    if nd == 3 and w.shape[0] <= _PLANE_TAPS_MAX and sub.shape[0] > 1:
        _fft_planes(src, w, sub, offset, L[1:], real, workers)
        return
    if real:
        spec = sp_fft.rfftn(src, s=L, axes=axes, workers=workers)
    else:
        spec = sp_fft.fftn(src, s=L, axes=axes, workers=workers)
    spec *= _kernel_spectrum(w, L, offset, real)
    res = _inverse_cropped(spec, L, sub.shape, real, workers)
    sub[...] = res


# 3-D kernels with at most this many taps along axis 0 run as 2-D transforms of the
# planes plus a direct sum over the taps in the frequency domain: no transform along
# axis 0 (forward, inverse, or of the kernel) at all.  Measured 128^3 float32: 2-D
# transforms of the planes 37 ms + 7-tap sum 15 ms against 54 ms + ~10 ms of kernel
# spectrum for the 3-D transform.  The tap sum is one fused numba pass (``_fft_mac``).
_PLANE_TAPS_MAX = 8


# complex dtypes (str) whose numba tap-sum kernels are compiled in this process
_PLANE_MAC_READY: set = set()


def _plane_mac_ready(dtype) -> bool:
    """Whether the tap sum may run as the numba pass (``_fft_mac``). The FFT methods are
    what the first-call tier serves while kernels compile (``_firstcall``), so they must
    not compile in the foreground there: under the tier the numpy expression runs until
    the pass is compiled; compile mode (tests, benchmarks, ``warmup``, the tier's own
    background compile and loader threads) compiles or loads both of its variants."""
    key = np.dtype(dtype).str
    if key in _PLANE_MAC_READY:
        return True
    if first_call_mode() != "compile":
        return False
    from ._fft_mac import warm
    warm(dtype)
    _PLANE_MAC_READY.add(key)
    return True


def _fft_planes(src, w, sub, offset, Lp, real, workers):
    """out[i] = sum_a W_a * S[offset0 + i + a] with S the 2-D spectra of the data planes
    and W_a those of the kernel planes; then the inverse 2-D transforms."""
    k0 = w.shape[0]
    c0 = src.shape[0]
    m0 = sub.shape[0]
    r0 = offset[0]
    fwd = sp_fft.rfftn if real else sp_fft.fftn
    spec = fwd(src, s=Lp, axes=(1, 2), workers=workers)
    wspec = np.stack([_kernel_spectrum(np.ascontiguousarray(w[a]), Lp, offset[1:], real,
                                       part=("plane", a)) for a in range(k0)])
    wspec = wspec.astype(spec.dtype, copy=False)
    if _plane_mac_ready(spec.dtype):
        # output i reads plane r0 + i + a where it exists; one fused parallel pass
        from ._fft_mac import plane_mac
        acc = np.empty((m0,) + spec.shape[1:], spec.dtype)
        plane_mac(np.ascontiguousarray(spec), wspec, acc, r0)
    else:
        acc = np.zeros((m0,) + spec.shape[1:], spec.dtype)
        tmp = np.empty_like(acc)
        for a in range(k0):
            lo, hi = max(0, -(r0 + a)), min(m0, c0 - r0 - a)
            if hi <= lo:
                continue
            t = tmp[:hi - lo]
            np.multiply(spec[r0 + a + lo:r0 + a + hi], wspec[a], out=t)
            acc[lo:hi] += t
        del tmp
    del spec
    sub[...] = _inverse_cropped(acc, Lp, sub.shape[1:], real, workers)


def _inverse_cropped(spec, L, m, real, workers):
    """Inverse transform of ``spec`` keeping outputs [0, m) per axis, transforming the
    leading axes first so the last (real) stage runs only over the kept rows."""
    nd = len(L)
    lead = spec.ndim - nd
    for a in range(nd - 1):
        ax = lead + a
        spec = sp_fft.ifft(spec, axis=ax, workers=workers, overwrite_x=True)
        if m[a] < L[a]:
            spec = spec[(slice(None),) * ax + (slice(0, m[a]),)]
    if real:
        res = sp_fft.irfft(spec, n=L[-1], axis=-1, workers=workers,
                           overwrite_x=spec.base is None)
    else:
        res = sp_fft.ifft(spec, axis=-1, workers=workers, overwrite_x=spec.base is None)
    return res[..., :m[-1]]


# -- overlap-add (overlap-save blocks) ---------------------------------------------------------

def _oa_blocks(dcore, w, sub, offset, L, real, has_bad):
    nd = w.ndim
    workers = fft_workers()
    B = tuple(Lb - k + 1 for Lb, k in zip(L, w.shape))
    nb = tuple(-(-m // b) for m, b in zip(sub.shape, B))
    spec_k = _kernel_spectrum(w, L, (0,) * nd, real)
    # Block b's window starts at data index offset + b*B (may reach past the data);
    # interior blocks along an axis: full output block and window inside the data.
    lo_b, hi_b = [], []
    for n, r, b, Lb, m in zip(dcore.shape, offset, B, L, sub.shape):
        first = max(0, -(-(-r) // b))                      # r + i*b >= 0
        last = min((n - Lb - r) // b + 1, m // b)         # r + i*b + Lb <= n, full block
        lo_b.append(min(first, last) if last > first else 0)
        hi_b.append(last if last > first else 0)
    spec_bytes = int(np.prod([Lb for Lb in L[:-1]])) * (L[-1] // 2 + 1 if real else L[-1]) \
        * np.dtype(spec_k.dtype).itemsize
    per_chunk = max(1, OA_CHUNK_BYTES // max(spec_bytes, 1))

    # 1) interior blocks: strided views of the data, batched along block axis 0
    if all(h > l for l, h in zip(lo_b, hi_b)):
        counts = [h - l for l, h in zip(lo_b, hi_b)]
        row = int(np.prod(counts[1:]))
        rows_per_chunk = max(1, per_chunk // max(row, 1))
        st = dcore.strides
        ost = sub.strides
        for c0 in range(lo_b[0], hi_b[0], rows_per_chunk):
            c1 = min(hi_b[0], c0 + rows_per_chunk)
            cnt = [c1 - c0] + counts[1:]
            first = [c0] + lo_b[1:]
            base = tuple(r + f * b for r, f, b in zip(offset, first, B))
            view = as_strided(dcore[tuple(slice(v, None) for v in base)], shape=tuple(cnt) + tuple(L),
                              strides=tuple(s * b for s, b in zip(st, B)) + st,
                              writeable=False)
            obase = tuple(f * b for f, b in zip(first, B))
            oview = as_strided(sub[tuple(slice(v, None) for v in obase)], shape=tuple(cnt) + B,
                               strides=tuple(s * b for s, b in zip(ost, B)) + ost)
            _blocks_transform(view, spec_k, L, B, oview, real, workers, has_bad)

    # 2) the remaining (edge) blocks, gathered into zero-padded buffers in batches
    edge = _edge_blocks(nb, lo_b, hi_b)
    for i in range(0, len(edge), per_chunk):
        chunk = edge[i:i + per_chunk]
        buf = np.zeros((len(chunk),) + tuple(L), dcore.dtype)
        for t, bidx in enumerate(chunk):
            src, dst = [], []
            for a in range(nd):
                p0 = offset[a] + bidx[a] * B[a]
                lo, hi = max(0, p0), min(dcore.shape[a], p0 + L[a])
                src.append(slice(lo, hi))
                dst.append(slice(lo - p0, hi - p0))
            if all(s.stop > s.start for s in src):
                buf[(t,) + tuple(dst)] = dcore[tuple(src)]
        res = _blocks_spectra_inverse(buf, spec_k, L, B, real, workers, has_bad)
        for t, bidx in enumerate(chunk):
            osl = tuple(slice(b * Bb, min((b + 1) * Bb, m))
                        for b, Bb, m in zip(bidx, B, sub.shape))
            sub[osl] = res[(t,) + tuple(slice(0, s.stop - s.start) for s in osl)]


def _edge_blocks(nb, lo_b, hi_b):
    """Block indices outside the interior box [lo_b, hi_b), without visiting the box."""
    nd = len(nb)
    if any(h <= l for l, h in zip(lo_b, hi_b)):
        return list(itertools.product(*(range(n) for n in nb)))
    out = []
    for a in range(nd):
        ranges = []
        for d in range(nd):
            if d < a:
                ranges.append(range(lo_b[d], hi_b[d]))
            elif d == a:
                ranges.append([i for i in range(nb[d]) if not lo_b[d] <= i < hi_b[d]])
            else:
                ranges.append(range(nb[d]))
        out.extend(itertools.product(*ranges))
    return out


def _blocks_spectra_inverse(buf, spec_k, L, B, real, workers, has_bad):
    nd = len(L)
    if has_bad:
        buf[~np.isfinite(buf)] = 0
    axes = tuple(range(buf.ndim - nd, buf.ndim))
    if real:
        spec = sp_fft.rfftn(buf, s=L, axes=axes, workers=workers)
    else:
        spec = sp_fft.fftn(buf, s=L, axes=axes, workers=workers)
    spec *= spec_k
    return _inverse_cropped(spec, L, B, real, workers)


def _blocks_transform(view, spec_k, L, B, oview, real, workers, has_bad):
    # Non-finite samples must be zeroed in a copy; otherwise pocketfft reads the strided
    # windows directly (it copies each line into its own scratch anyway).
    src = np.array(view) if has_bad else view
    oview[...] = _blocks_spectra_inverse(src, spec_k, L, B, real, workers, has_bad)


# -- non-finite repair --------------------------------------------------------------------------

def _add_nonfinite(dcore, bad, w, sub, offset):
    """Add w[j] * d[p] for every non-finite sample d[p] to the outputs whose window holds
    it: out[i] with i = p - offset - j.  Loops over whichever is fewer, samples or taps."""
    with np.errstate(invalid="ignore", over="ignore"):
        _add_nonfinite_terms(dcore, bad, w, sub, offset)


def _add_nonfinite_terms(dcore, bad, w, sub, offset):
    nd = w.ndim
    pos = np.stack(bad, axis=1)
    vals = dcore[bad]
    if len(vals) <= w.size:
        for p, v in zip(pos, vals):
            o_sl, w_sl = [], []
            for a in range(nd):
                # outputs i in [p - r - (k-1), p - r], tap j = p - r - i
                hi = p[a] - offset[a]
                lo = hi - (w.shape[a] - 1)
                i0, i1 = max(lo, 0), min(hi, sub.shape[a] - 1)
                if i1 < i0:
                    break
                o_sl.append(slice(i0, i1 + 1))
                # taps j = hi - i for i in [i0, i1], descending
                j_hi, j_lo = hi - i0, hi - i1
                w_sl.append(slice(j_hi, j_lo - 1 if j_lo > 0 else None, -1))
            else:
                sub[tuple(o_sl)] += w[tuple(w_sl)] * v
        return
    for j in np.ndindex(*w.shape):
        i = pos - np.asarray(offset) - np.asarray(j)
        ok = np.all((i >= 0) & (i < np.asarray(sub.shape)), axis=1)
        if ok.any():
            np.add.at(sub, tuple(i[ok].T), w[j] * vals[ok])
