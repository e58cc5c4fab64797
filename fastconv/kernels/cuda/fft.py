"""FFT and overlap-add (overlap-save) correlation on the GPU: cuFFT through CuPy.

Launcher contract (as ``kernels/cpu/fft.py``)::

    correlate_fft(x, w, out, start, boundary="constant", cval=0, *, nonfinite="local",
                  spectra=None)
    correlate_oa(x, w, out, start, boundary="constant", cval=0, *, block=None,
                 nonfinite="local", spectra=None)
    correlate_batched(x, w, out, start, batch)

compute out[i] = sum_j w[j] * X[start + i + j], X being ``x`` extended by ``boundary``
(``correlate_batched``: zero fill, and along the ``batch`` axes x, w and out pair
elementwise). ``x`` and ``out`` are C-contiguous device arrays, ``w`` a host array.

How (ranks 1-3, folded to rank 3; one code path for both methods):

* The outputs split into blocks of B = L - k + 1 per axis (overlap-save): the whole-array
  FFT is one block with L >= m + k - 1 (a 2/3/5/7-smooth length, cuFFT's fast radices;
  even along the last axis of a real transform), overlap-add uses the decision's
  ``block`` lengths. Blocks are processed in batches of about ``CHUNK_BYTES``.
* ``_gather`` (a ``@cuda.jit`` kernel) fills the batch's input buffers: element e of
  block b is the extended input at start + b * B + e, through per-axis index maps
  (``_extend.index_map``; -1: ``cval``), so padding and every boundary are one pass.
* The kernel sits at circular positions -j mod L (the circular convolution with it is
  the correlation, no shift); its spectrum is a pruned transform (``_place_last`` and
  ``_scatter_axis``: the last axis transformed over the kernel's rows only, the earlier
  axes grown to length L one at a time), once per call or kept in the caller's
  ``spectra`` dict (plans).
* cuFFT (``cupy.fft.rfftn``/``fftn`` over the last axes, batched over blocks) on the
  launcher's stream; ``_spec_mul`` multiplies the spectra in place; the inverse
  transform; ``_crop`` writes the first B values of each block to ``out``. Under Numba's
  simulator (``_backend.SIMULATOR``, no GPU) NumPy's FFT stands in for cuFFT, and only
  there.

Numerical contract (as on the CPU):

* Non-finite data stays local (``nonfinite="local"``): when ``x`` (or a constant fill)
  holds NaN/Inf, the transform runs with those values read as 0, and the outputs whose
  window holds one are then recomputed by the direct sum (``_direct_masked``). Which
  outputs those are is a box sum of a non-finite indicator over each output's window
  (``filters1d.axis_pass``, with the call's boundary): positive means touched. A kernel
  with a NaN/Inf tap affects every output: the direct method runs instead.
  ``nonfinite="ignore"`` skips the check.
* Overflow guard: when ``L**2 * max|x| * sum|w|`` could come within a margin of the
  dtype's largest value, data and kernel are scaled by powers of two (exact) in
  ``_gather``/``_place_last`` and scaled back in ``_crop``.
* int64 runs in float64 and is rounded back when the result is provably exact
  (scipy's bound on the largest output and the transform's rounding below 1/4, as
  ``cpu.fft.fft_is_exact``), else the direct method runs.
* Ranks above 3 run the direct method (cuFFT plans here are for up to three axes).
"""
from __future__ import annotations

import math

import numpy as np

from ..._extend import index_map
from ..._fftsize import integers_exact, may_overflow, oa_block_shape
from ._backend import SIMULATOR, cuda, current_stream, jit, launch
from . import direct, filters1d

__all__ = ["correlate_fft", "correlate_oa", "correlate_batched", "PTX_SIGNATURES"]

THREADS = 256
MAX_BLOCKS = 65535
# Bytes of input buffers one batch of overlap-add blocks may use (its spectra and the
# inverse take about as much again each).
CHUNK_BYTES = 256 << 20


# Threads along the last axis of the 3-D grids (_gather, _crop). A launch parameter, not
# a shape: the simulator (which pays for every thread, idle or not) uses a warp's worth.
ROW_THREADS = 32 if SIMULATOR else 128


def _grid(n):
    return max(1, min(MAX_BLOCKS, -(-int(n) // THREADS)))


def _grid3(n2, n1, n0):
    """Blocks of ROW_THREADS over the last axis, one block row per middle and first
    index (capped at the grid's limits; the kernels loop past them)."""
    return (max(1, -(-int(n2) // ROW_THREADS)), max(1, min(MAX_BLOCKS, int(n1))),
            max(1, min(MAX_BLOCKS, int(n0))))


# -- kernels -----------------------------------------------------------------------------------

# The per-element kernels below run on a 3-D grid: x over the last axis (threads),
# y over the middle one, z over (batch element, first axis), each with a stride loop
# for the grid limits, so no thread decodes a flat index (64-bit divisions by run-time
# lengths cost tens of instructions each on a GPU).

@jit
def _gather(x, maps, o1, o2, ml0, ml1, ml2, B0, B1, B2, nb1, nb2, nblk, c0, cval, scale,
            zero_bad, buf):
    """buf[t, e0, e1, e2] = scale * X[ib, start + b*B + e] for batch element c0 + t =
    ib * nblk + (b0 * nb1 + b1) * nb2 + b2 (per axis: the map of extended index
    g = b*B + e at maps[o_a + g], -1 reading ``cval``; g past the map's length ml: 0).
    ``zero_bad``: NaN/Inf samples read as 0 (they are added back by the direct sum)."""
    L0 = buf.shape[1]
    L1 = buf.shape[2]
    L2 = buf.shape[3]
    e2 = cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x
    z = cuda.blockIdx.z
    while z < buf.shape[0] * L0:
        tl = z // L0
        e0 = z - tl * L0
        t = tl + c0
        ib = t // nblk
        blk = t - ib * nblk
        b2 = blk % nb2
        b1 = (blk // nb2) % nb1
        b0 = blk // (nb1 * nb2)
        g0 = b0 * B0 + e0
        s0 = maps[g0] if g0 < ml0 else -2          # -2: past the span, a zero
        e1 = cuda.blockIdx.y
        while e1 < L1:
            g1 = b1 * B1 + e1
            s1 = maps[o1 + g1] if g1 < ml1 else -2
            if e2 < L2:
                g2 = b2 * B2 + e2
                s2 = maps[o2 + g2] if g2 < ml2 else -2
                v = cval * 0
                if s0 == -2 or s1 == -2 or s2 == -2:
                    v = cval * 0
                elif s0 >= 0 and s1 >= 0 and s2 >= 0:
                    v = x[ib, s0, s1, s2]
                    if zero_bad and not (math.isfinite(v.real) and math.isfinite(v.imag)):
                        v = cval * 0
                else:
                    v = cval
                buf[tl, e0, e1, e2] = v * scale
            e1 += cuda.gridDim.y
        z += cuda.gridDim.z


@jit
def _place_last(w, scale, kbuf):
    """kbuf[ib, j0, j1, -j2 mod L2] = scale * w[ib, j0, j1, j2] (kbuf zeroed, its last
    axis of transform length L2, the others as long as w's): the first stage of the
    kernel spectrum, whose other axes are grown to their circular positions after the
    last axis is transformed (``_scatter_axis``)."""
    k0 = w.shape[1]
    k1 = w.shape[2]
    k2 = w.shape[3]
    L2 = kbuf.shape[3]
    total = w.shape[0] * k0 * k1 * k2
    i = cuda.grid(1)
    step = cuda.gridsize(1)
    while i < total:
        j2 = i % k2
        r = i // k2
        j1 = r % k1
        r = r // k1
        j0 = r % k0
        ib = r // k0
        kbuf[ib, j0, j1, (L2 - j2) % L2] = w[ib, j0, j1, j2] * scale
        i += step


@jit
def _scatter_axis(src, dst, ax):
    """dst[..., -j mod L, ...] = src[..., j, ...] along axis ``ax`` (1 or 2) of 4-D
    arrays, L = dst's length there (dst zeroed): kernel spectrum rows moved to their
    circular positions before that axis is transformed, so only the rows that hold taps
    were transformed along the later axes (a pruned transform)."""
    n1 = src.shape[1]
    n2 = src.shape[2]
    n3 = src.shape[3]
    L = dst.shape[ax]
    total = src.shape[0] * n1 * n2 * n3
    i = cuda.grid(1)
    step = cuda.gridsize(1)
    while i < total:
        f = i % n3
        r = i // n3
        a2 = r % n2
        r = r // n2
        a1 = r % n1
        b = r // n1
        if ax == 1:
            dst[b, (L - a1) % L, a2, f] = src[b, a1, a2, f]
        else:
            dst[b, a1, (L - a2) % L, f] = src[b, a1, a2, f]
        i += step


@jit
def _spec_mul(S, K, c0, nblk):
    """S[t, f] *= K[ib, f] with ib = (c0 + t) // nblk (0 when K holds one kernel); a 2-D
    grid: x over f, y over t."""
    nspec = S.shape[1]
    nk = K.shape[0]
    f = cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x
    t = cuda.blockIdx.y
    while t < S.shape[0]:
        ib = (c0 + t) // nblk if nk > 1 else 0
        if f < nspec:
            S[t, f] = S[t, f] * K[ib, f]
        t += cuda.gridDim.y


@jit
def _crop(res, B0, B1, B2, nb1, nb2, nblk, c0, u1, u2, out):
    """out[ib, b*B + e] = res[t, e] * u1 * u2 for e < B (and b*B + e inside out), block
    c0 + t = ib * nblk + (b0 * nb1 + b1) * nb2 + b2. u1 * u2 undoes the overflow guard's
    scaling (two factors so that neither overflows; 1 otherwise). Grid as ``_gather``'s,
    over (t, e0), e1, e2 < B."""
    m0 = out.shape[1]
    m1 = out.shape[2]
    m2 = out.shape[3]
    e2 = cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x
    z = cuda.blockIdx.z
    while z < res.shape[0] * B0:
        tl = z // B0
        e0 = z - tl * B0
        bt = tl + c0
        ib = bt // nblk
        blk = bt - ib * nblk
        b2 = blk % nb2
        b1 = (blk // nb2) % nb1
        b0 = blk // (nb1 * nb2)
        i0 = b0 * B0 + e0
        i2 = b2 * B2 + e2
        e1 = cuda.blockIdx.y
        while e1 < B1:
            i1 = b1 * B1 + e1
            if e2 < B2 and i0 < m0 and i1 < m1 and i2 < m2:
                out[ib, i0, i1, i2] = res[tl, e0, e1, e2] * u1 * u2
            e1 += cuda.gridDim.y
        z += cuda.gridDim.z


@jit
def _round_into(src, out):
    """out = round(src): the exact integer result of an int64 correlation done in
    float64 (its error is below 1/4, so any rounding rule gives the same integer)."""
    i = cuda.grid(1)
    step = cuda.gridsize(1)
    while i < out.shape[0]:
        out[i] = math.floor(src[i] + 0.5)
        i += step


@jit
def _absmax(a, res):
    """res[0] = max over the finite values of |a|, res[1] = 1 if any value is NaN/Inf
    (float64; atomics across blocks): the non-finite check and the overflow guard's
    magnitude in one pass and one read-back."""
    i = cuda.grid(1)
    step = cuda.gridsize(1)
    best = 0.0
    bad = 0.0
    while i < a.shape[0]:
        v = a[i]
        if math.isfinite(v.real) and math.isfinite(v.imag):
            m = abs(v)
            if m > best:
                best = m
        else:
            bad = 1.0
        i += step
    cuda.atomic.max(res, 0, best)
    if bad > 0:
        res[1] = 1.0


@jit
def _indicator(a, ind):
    """ind[i] = 1 where a[i] is NaN or Inf, else 0 (float32)."""
    i = cuda.grid(1)
    step = cuda.gridsize(1)
    while i < a.shape[0]:
        v = a[i]
        ind[i] = 0 if math.isfinite(v.real) and math.isfinite(v.imag) else 1
        i += step


@jit
def _direct_masked(x, maps, yo, xo, w, cval, touched, out):
    """Where touched[z, y, x] > 0: out = the direct sum over the window (the non-finite
    values included, as the direct method computes them); elsewhere out is kept."""
    m0 = out.shape[0]
    m1 = out.shape[1]
    m2 = out.shape[2]
    kd = w.shape[0]
    kh = w.shape[1]
    kw = w.shape[2]
    acc = cuda.local.array(1, dtype=out.dtype)
    i = cuda.grid(1)
    step = cuda.gridsize(1)
    total = m0 * m1 * m2
    while i < total:
        ox = i % m2
        r = i // m2
        oy = r % m1
        z = r // m1
        if touched[z, oy, ox] > 0:
            acc[0] = 0
            for a in range(kd):
                zs = maps[z + a]
                for b in range(kh):
                    ys = maps[yo + oy + b]
                    for c in range(kw):
                        xs = maps[xo + ox + c]
                        if zs >= 0 and ys >= 0 and xs >= 0:
                            acc[0] += w[a, b, c] * x[zs, ys, xs]
                        else:
                            acc[0] += w[a, b, c] * cval
            out[z, oy, ox] = acc[0]
        i += step


def _ptx_signatures():
    """Every (kernel, argument types) this module launches, for tests/test_cuda_ptx.py."""
    from numba import types
    from numba.np.numpy_support import from_dtype

    from fastconv.kernels import KERNEL_DTYPES
    i64, f64, b1 = types.int64, types.float64, types.boolean
    imaps = types.Array(types.int32, 1, "C")
    sigs = {k: [] for k in (_gather, _place_last, _scatter_axis, _spec_mul, _crop,
                            _round_into, _absmax, _indicator, _direct_masked)}
    for dt in KERNEL_DTYPES:
        t = from_dtype(dt)
        if dt.kind == "i":
            sigs[_absmax].append((types.Array(t, 1, "C"), types.Array(f64, 1, "C")))
            continue
        a1, a3, a4 = (types.Array(t, n, "C") for n in (1, 3, 4))
        ct = from_dtype(np.result_type(dt, np.complex64))
        sigs[_gather].append((a4, imaps) + (i64,) * 12 + (t, f64, b1, a4))
        sigs[_place_last].append((a4, f64, a4))
        sigs[_scatter_axis].append((types.Array(ct, 4, "C"), types.Array(ct, 4, "C"), i64))
        sigs[_spec_mul].append((types.Array(ct, 2, "C"), types.Array(ct, 2, "C"), i64, i64))
        sigs[_crop].append((a4,) + (i64,) * 7 + (f64, f64, a4))
        sigs[_absmax].append((a1, types.Array(f64, 1, "C")))
        sigs[_indicator].append((a1, types.Array(types.float32, 1, "C")))
        sigs[_direct_masked].append((a3, imaps, i64, i64, a3, t,
                                     types.Array(types.float32, 3, "C"), a3))
    sigs[_round_into].append((types.Array(f64, 1, "C"), types.Array(types.int64, 1, "C")))
    return sigs


PTX_SIGNATURES = _ptx_signatures


# -- the transform stage: cuFFT through CuPy, or NumPy under the simulator ------------------

def _transform(kind, a, nd, L=None, axis=None):
    """``kind`` (rfftn/irfftn/fftn/ifftn over the last ``nd`` axes of device array ``a``;
    ``L``: the inverse real transform's lengths; or rfft/fft along ``axis``) as a new
    device array; complex64 spectra for float32 data."""
    stream = current_stream()
    if kind in ("rfft", "fft"):
        args = {"axis": axis}
    elif kind == "irfftn":
        args = {"s": L, "axes": tuple(range(a.ndim - nd, a.ndim))}
    else:
        args = {"axes": tuple(range(a.ndim - nd, a.ndim))}
    if SIMULATOR:
        # NumPy stand-in for cuFFT: only under the simulator, which has no GPU
        host = a.copy_to_host()
        res = getattr(np.fft, kind)(host, **args)
        single = a.dtype in (np.float32, np.complex64)
        if kind == "irfftn":
            res = res.astype(np.float32 if single else np.float64)
        else:
            res = res.astype(np.complex64 if single else np.complex128)
        return cuda.to_device(np.ascontiguousarray(res), stream=stream)
    import cupy
    from ._backend import cupy_stream, from_cupy, to_cupy
    with cupy_stream(stream):
        res = getattr(cupy.fft, kind)(to_cupy(a), **args)
        return from_cupy(cupy.ascontiguousarray(res))


def _kernel_spectrum(w4, L, nd, real, wscale):
    """Spectra of the kernels in w4 (nbw, k0, k1, k2) placed at circular positions -j mod
    L per axis, as (nbw, spectrum size): the last axis transformed over the kernel's own
    rows only, then each earlier transformed axis grown to its length and transformed
    (the rows of zeros never go through the last-axis transforms)."""
    from . import _memory
    stream = current_stream()
    nbw = w4.shape[0]
    buf = _memory.zeros((nbw,) + tuple(w4.shape[1:3]) + (L[2],), w4.dtype)
    launch(_place_last, _grid(w4.size), THREADS, cuda.to_device(w4, stream=stream),
           wscale, buf)
    spec = _transform("rfft" if real else "fft", buf, 1, axis=3)
    for ax in (2, 1):
        if ax - 1 < 3 - nd:            # a folded axis (length 1): nothing to transform
            continue
        shape = list(spec.shape)
        shape[ax] = L[ax - 1]
        grown = _memory.zeros(tuple(shape), spec.dtype)
        launch(_scatter_axis, _grid(spec.size), THREADS, spec, grown, ax)
        spec = _transform("fft", grown, 1, axis=ax)
    return spec.reshape((nbw, spec.size // nbw))


def _smooth_len(n, even=False):
    """Smallest 2/3/5/7-smooth length >= n (even when ``even``): cuFFT's fast radices."""
    n = max(int(n), 1)
    while True:
        m = n
        for p in (2, 3, 5, 7):
            while m % p == 0:
                m //= p
        if m == 1 and (not even or n % 2 == 0 or n == 1):
            return n
        n += 1


# -- host helpers ------------------------------------------------------------------------------

def _scan(a):
    """(every value finite, max |a| over the finite values) of device array ``a``."""
    if a.size == 0:
        return True, 0.0
    stream = current_stream()
    res = cuda.to_device(np.zeros(2, np.float64), stream=stream)
    launch(_absmax, _grid(a.size), THREADS, a.reshape(a.size), res)
    host = res.copy_to_host(stream=stream)
    stream.synchronize()
    return not host[1], float(host[0])


def _int_fft_exact(xmax, w, cval, boundary, x_shape, out_shape):
    """``cpu.fft.fft_is_exact`` from the data's largest magnitude (computed on the device):
    scipy's bound on the largest output below 2**52 and the transform's rounding below
    1/4, so rounding back gives the exact integers."""
    if w.size == 0 or int(np.prod(x_shape)) == 0:
        return True
    xmax = max(float(xmax), abs(float(cval)))
    wmax = float(np.max(np.abs(w)))
    return integers_exact(xmax, wmax, w, x_shape, int(np.prod(x_shape)), cval, boundary,
                          out_shape)


def _exponent(v) -> int:
    return int(np.frexp(v)[1]) if v > 0 else 0


def _fold(shape, nd):
    """A rank-nd shape as rank 3 (leading length-1 axes)."""
    return (1,) * (3 - nd) + tuple(shape)


def _fold_start(start, nd):
    """Rank-nd start offsets as rank 3 (the added axes start at 0)."""
    return (0,) * (3 - nd) + tuple(start)


# -- launchers ---------------------------------------------------------------------------------

def correlate_fft(x, w, out, start, boundary="constant", cval=0, *, nonfinite="local",
                  spectra=None):
    """Whole-array FFT correlation on the device; see the module docstring.
    ``spectra``: an optional dict owned by the caller for ONE kernel ``w``; kernel
    spectra are kept there (on the device) for later calls with the same sizes."""
    return _correlate(x, w, out, start, boundary, cval, None, nonfinite, spectra)


def correlate_oa(x, w, out, start, boundary="constant", cval=0, *, block=None,
                 nonfinite="local", spectra=None):
    """Overlap-add (overlap-save) correlation in blocks of FFT shape ``block`` (per axis;
    None: ``_fftsize.oa_block_shape``); see the module docstring."""
    return _correlate(x, w, out, start, boundary, cval, "auto" if block is None else block,
                      nonfinite, spectra)


def _correlate(x, w, out, start, boundary, cval, block, nonfinite, spectra):
    from . import _memory
    if out.size == 0:
        return out
    if w.size == 0:
        return _memory.fill(out, 0)
    nd = x.ndim
    if nd > 3:
        return direct.correlate(x, w, out, start, boundary, cval)
    dt = out.dtype
    w = np.ascontiguousarray(w, dtype=dt)
    start = tuple(int(s) for s in start)
    if dt.kind in "iu":
        xmax = _scan(x)[1]
        if not _int_fft_exact(xmax, w, cval, boundary, x.shape, out.shape):
            return direct.correlate(x, w, out, start, boundary, cval)
        f64 = np.dtype(np.float64)
        tmp = _memory.empty(out.shape, f64)
        _correlate(_memory.convert(x, f64), w.astype(f64), tmp, start, boundary,
                   float(cval), block, "ignore", None)
        launch(_round_into, _grid(out.size), THREADS, tmp.reshape(out.size),
               out.reshape(out.size))
        return out
    cval = dt.type(cval)
    bad = False
    scaled = False
    amax = 0.0
    if nonfinite != "ignore":
        if not np.isfinite(w).all():
            return direct.correlate(x, w, out, start, boundary, cval)
        finite, amax = _scan(x)
        bad = not finite or (boundary == "constant" and not np.isfinite(cval))
        amax = max(amax, abs(complex(cval)) if np.isfinite(cval) else 0.0)
        scaled = may_overflow(amax, w, x.shape, dt)
    real = dt.kind != "c"
    m, k = tuple(out.shape), w.shape
    if block is None:
        L = tuple(_smooth_len(mm + kk - 1, real and a == nd - 1)
                  for a, (mm, kk) in enumerate(zip(m, k)))
    else:
        if block == "auto":
            block = oa_block_shape(m, k, real)
        L = []
        for a, (b, mm, kk) in enumerate(zip(block, m, k)):
            whole = _smooth_len(mm + kk - 1, real and a == nd - 1)
            L.append(min(whole, _smooth_len(max(int(b), kk), real and a == nd - 1)))
        L = tuple(L)
    x4 = x.reshape((1,) + _fold(x.shape, nd))
    o4 = out.reshape((1,) + _fold(out.shape, nd))
    w4 = w.reshape((1,) + _fold(w.shape, nd))
    ex = _exponent(amax) if scaled else 0
    ew = _exponent(float(np.max(np.abs(w)))) if scaled else 0
    cfill = cval if np.isfinite(cval) else dt.type(0)
    _fft_blocks(x4, w4, o4, _fold_start(start, nd), boundary, cfill, _fold(L, nd), nd, real,
                bad, ex, ew, spectra if not scaled else None)
    if bad:
        _repair(x, w, out, start, boundary, cval)
    return out


def _fft_blocks(x4, w4, o4, start, boundary, cval, L, nd, real, zero_bad, ex, ew,
                spectra):
    """The blocked transform over rank-3 (folded) data with a leading batch axis:
    x4 (nbx, n...), w4 (1 or nbx, k...), o4 (nbx, m...); ``nd`` trailing axes are
    transformed."""
    from . import _memory
    stream = current_stream()
    dt = o4.dtype
    nbx = x4.shape[0]
    n3, k3, m3 = tuple(x4.shape[1:]), tuple(w4.shape[1:]), tuple(o4.shape[1:])
    B = tuple(Lb - kb + 1 for Lb, kb in zip(L, k3))
    nb = tuple(-(-mm // bb) for mm, bb in zip(m3, B))
    nblk = nb[0] * nb[1] * nb[2]
    parts = [index_map(int(n), int(s), int(mm) + int(kk) - 1, boundary).astype(np.int32)
             for n, s, mm, kk in zip(n3, start, m3, k3)]
    ml = [len(p) for p in parts]
    dmaps = cuda.to_device(np.concatenate(parts), stream=stream)
    o1, o2 = ml[0], ml[0] + ml[1]
    scale = math.ldexp(1.0, -ex)
    wscale = math.ldexp(1.0, -ew)
    u = ex + ew
    u1, u2 = math.ldexp(1.0, u // 2), math.ldexp(1.0, u - u // 2)
    fwd, inv = ("rfftn", "irfftn") if real else ("fftn", "ifftn")

    # kernel spectra: one per kernel in w4 (batched: one per batch element)
    key = ("cuda", L, real, dt.str, w4.shape)
    K = spectra.get(key) if spectra is not None else None
    if K is None:
        K = _kernel_spectrum(w4, L, nd, real, wscale)
        if spectra is not None:
            spectra[key] = K

    total = nbx * nblk
    per = max(1, CHUNK_BYTES // max(1, int(np.prod(L)) * dt.itemsize))
    for c0 in range(0, total, per):
        cnt = min(per, total - c0)
        buf = _memory.empty((cnt,) + tuple(L), dt)
        launch(_gather, _grid3(L[2], L[1], cnt * L[0]), ROW_THREADS, x4, dmaps, o1, o2,
               ml[0], ml[1], ml[2], B[0], B[1], B[2], nb[1], nb[2], nblk, c0, cval, scale,
               bool(zero_bad), buf)
        S = _transform(fwd, buf, nd)
        S2 = S.reshape((cnt, S.size // cnt))
        launch(_spec_mul, (-(-S2.shape[1] // THREADS), min(MAX_BLOCKS, cnt)), THREADS, S2,
               K, c0, nblk)
        res = _transform(inv, S, nd, L=L[3 - nd:]) if real else _transform(inv, S, nd)
        launch(_crop, _grid3(B[2], B[1], cnt * B[0]), ROW_THREADS, res, B[0], B[1], B[2],
               nb[1], nb[2], nblk, c0, u1, u2, o4)
    return o4


def _repair(x, w, out, start, boundary, cval):
    """Recompute by the direct sum the outputs whose window holds a NaN/Inf (of x, or a
    non-finite constant fill): a box sum of the indicator over each output's window,
    one pass per axis with the call's boundary, is positive exactly there."""
    from . import _memory
    nd = x.ndim
    ind = _memory.empty(x.shape, np.float32)
    launch(_indicator, _grid(x.size), THREADS, x.reshape(x.size), ind.reshape(x.size))
    fill = 0.0 if np.isfinite(cval) else 1.0
    cur = ind
    for a in range(nd):
        shape = tuple(out.shape[d] if d <= a else x.shape[d] for d in range(nd))
        nxt = _memory.empty(shape, np.float32)
        filters1d.axis_pass(cur, nxt, a, start[a], boundary,
                            np.ones(w.shape[a], np.float32), fill)
        cur = nxt
    x3 = x.reshape(_fold(x.shape, nd))
    o3 = out.reshape(_fold(out.shape, nd))
    w3 = np.ascontiguousarray(w.reshape(_fold(w.shape, nd)))
    maps, (_, yo, xo) = direct._maps(x3.shape, w3.shape, o3.shape, _fold_start(start, nd),
                                      boundary)
    stream = current_stream()
    launch(_direct_masked, _grid(out.size), THREADS, x3, cuda.to_device(maps, stream=stream),
           yo, xo, cuda.to_device(w3, stream=stream), cval, cur.reshape(o3.shape), o3)


def correlate_batched(x, w, out, start, batch):
    """``correlate_oa`` over the axes not in ``batch``; along the ``batch`` axes x, w and
    out have equal lengths and pair elementwise (fftconvolve's broadcast axes). The
    batch axes are moved in front (one strided copy), flattened, and every pair runs in
    one batched transform (finite data), or pair by pair through the NaN-local launcher."""
    from . import _memory
    from ._backend import strided_view
    if out.size == 0:
        return out
    dt = out.dtype
    nd = x.ndim
    batch = tuple(sorted(int(a) for a in batch))
    conv = tuple(a for a in range(nd) if a not in batch)
    perm = batch + conv
    nbt = int(np.prod([x.shape[a] for a in batch], dtype=np.int64))
    if w.size == 0:
        return _memory.fill(out, 0)
    xt = _memory.convert(strided_view(x, [x.shape[a] for a in perm],
                                      [x.strides[a] for a in perm]), dt)
    wt = np.ascontiguousarray(np.transpose(np.asarray(w, dt), perm))
    cshape_x = tuple(x.shape[a] for a in conv) or (1,)   # no convolved axis: products
    cshape_o = tuple(out.shape[a] for a in conv) or (1,)
    cshape_w = tuple(w.shape[a] for a in conv) or (1,)
    cstart = tuple(int(start[a]) for a in conv) or (0,)
    nc = len(cshape_x)
    xt = xt.reshape((nbt,) + cshape_x)
    wt = wt.reshape((nbt,) + cshape_w)
    ot = _memory.empty((nbt,) + cshape_o, dt)
    if nc > 3 or dt.kind in "iu" or not (_memory.all_finite(xt) and np.isfinite(wt).all()):
        # pair by pair: the NaN-local (and integer-exact) launcher
        for i in range(nbt):
            _correlate(xt[i], wt[i], ot[i], cstart, "constant", 0, "auto", "local", None)
    else:
        real = dt.kind != "c"
        L = tuple(_smooth_len(mm + kk - 1, real and a == nc - 1)
                  for a, (mm, kk) in enumerate(zip(cshape_o, cshape_w)))
        _fft_blocks(xt.reshape((nbt,) + _fold(cshape_x, nc)),
                    wt.reshape((nbt,) + _fold(cshape_w, nc)),
                    ot.reshape((nbt,) + _fold(cshape_o, nc)), _fold_start(cstart, nc), "constant",
                    dt.type(0), _fold(L, nc), nc, real, False, 0, 0, None)
    # back to out's axis order: ot (batch axes first) read through the inverse
    # permutation, copied into out
    tshape = tuple(out.shape[a] for a in perm)
    ot = ot.reshape(tshape)
    src_strides = [0] * nd
    for p, a in enumerate(perm):
        src_strides[a] = ot.strides[p]
    _memory._cast_into(strided_view(ot, out.shape, src_strides), out)
    return out
