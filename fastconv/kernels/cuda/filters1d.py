"""1-D passes along one axis on the GPU: scipy.ndimage's separable filters
(``run_passes``, the "filter" launcher) and the passes of the separable convolution
method (``axis_pass``, used by ``separable.py``).

Launcher contract (as ``kernels/cpu/filters1d.run_passes``)::

    run_passes(x, out, passes, cval)

``passes`` is one ``(axis, start, boundary, weights, size)`` pass (``weights`` None: a box
of ``size``), or two passes on neighbouring axes applied in the order given (two
weighted passes, fused here when ``fused_pair`` allows, or two boxes;
``_validate.FilterSpec``); boundaries are numpy.pad names (fastconv.ndimage has mapped
scipy's modes, 'mirror', 'nearest', 'grid-*' and the rest, onto them, and ``origin``
into ``start``). ``x`` and ``out`` are C-contiguous float32/float64 device arrays of one
shape (their dtypes may differ). Arithmetic as scipy's: every pass accumulates in
float64 whatever the dtypes and rounds once into its output; two passes round the
intermediate to out's dtype, as scipy rounds it into its output array. The sums run in
tap order rather than scipy's symmetric pairing, and the box filter multiplies its
window's sum by 1/size instead of dividing scipy's running sum by size, so results match
SciPy to float64 rounding, not bit for bit (the CPU twin is bit-exact).

How a pass runs: the data is seen as ``(A, N, B)`` with the filtered axis in the middle,
and the boundary is a table of source indices along it (``_extend.index_map``; -1 reads
the fill value), applied while the data is loaded into shared memory.

* ``B >= MID_MIN`` (any axis but the last): ``_pass_mid``, blocks of 32 x 8 threads, 32
  neighbouring columns (coalesced) by RY = 4 outputs per thread down the axis; the block's
  input rows plus halo sit in shared memory.
* ``B < MID_MIN`` (the last axis, or a few trailing channels): ``_pass_line``, a block
  loads a run of the line (up to SPAN values, channels interleaved) and each thread
  computes up to R_LINE outputs, output f reading span[f + j * B].
* Taps are taken in chunks of KC (any kernel length): per chunk the block loads the
  taps and the input run they read, so shared-memory shapes stay compile-time constants.
"""
from __future__ import annotations

import numpy as np

from ..._extend import index_map
from ._backend import cuda, current_stream, jit, launch

__all__ = ["run_passes", "axis_pass", "pass2d", "fused_pair", "PTX_SIGNATURES"]

KC = 32           # taps per chunk
MX = 32           # _pass_mid: columns per block (one warp)
MY = 8            # _pass_mid: thread rows per block
RY = 4            # _pass_mid: outputs per thread down the axis
MBH = MY * RY     # _pass_mid: outputs per block down the axis
MROWS = MBH + KC - 1   # _pass_mid: tile rows (a constant: shared shapes are literals)
MID_MIN = 32      # inner size from which the column kernel runs
SPAN = 2048       # _pass_line: values of a run held in shared memory
TL = 256          # _pass_line: threads per block
R_LINE = SPAN // TL
MAX_GRID = 65535
FB = 32           # _pass2d: output tile side (32 x 32 outputs, 32 x 8 threads)
FRY = FB // 8     # _pass2d: outputs per thread down a column
KF = 25           # _pass2d: longest factor kept in the fused tile (Gaussian sigma <= 3)
FS = FB + KF - 1  # _pass2d: input tile side
FT = FS * FB      # _pass2d: intermediate tile size (either orientation)
FUSED_ITEMSIZE = 8   # _pass2d: widest accumulation type (complex128 tiles: 78 KB > 48 KB)


@jit
def _pass_mid(x, tab, s, w, cval, scale, out):
    """out[a, i, b] = scale * sum_j w[j] * X[a, s + i + j, b], X read through ``tab`` (the
    source index of extended index s + e at tab[e]; -1: cval) unless the block's rows
    lie inside x. Accumulates in w's dtype (``scale``: 1, or 1/size for a box)."""
    tile = cuda.shared.array((MROWS, MX), dtype=w.dtype)
    taps = cuda.shared.array(KC, dtype=w.dtype)
    acc = cuda.local.array(RY, dtype=w.dtype)
    tx = cuda.threadIdx.x
    ty = cuda.threadIdx.y
    tid = ty * MX + tx
    na = out.shape[0]
    m = out.shape[1]
    nb = out.shape[2]
    n = x.shape[1]
    k = w.shape[0]
    b0 = cuda.blockIdx.x * MX
    b = b0 + tx
    a = cuda.blockIdx.z
    while a < na:
        yb = cuda.blockIdx.y
        while yb * MBH < m:
            i0 = yb * MBH
            for q in range(RY):
                acc[q] = 0
            c0 = 0
            while c0 < k:
                kc = min(KC, k - c0)
                rows = min(MBH + kc - 1, m + k - 1 - i0 - c0)
                inside = s + i0 + c0 >= 0 and s + i0 + c0 + rows <= n
                cuda.syncthreads()       # the previous chunk's tile is no longer read
                if tid < kc:
                    taps[tid] = w[c0 + tid]
                r = ty
                while r < MBH + kc - 1:
                    v = cval
                    if r < rows and b < nb:
                        e = i0 + c0 + r
                        src = s + e if inside else tab[e]
                        if src >= 0:
                            v = x[a, src, b]
                    tile[r, tx] = v
                    r += MY
                cuda.syncthreads()
                for j in range(kc):
                    wv = taps[j]
                    for q in range(RY):
                        acc[q] += wv * tile[ty * RY + q + j, tx]
                c0 += KC
            if b < nb:
                for q in range(RY):
                    i = i0 + ty * RY + q
                    if i < m:
                        out[a, i, b] = acc[q] * scale
            yb += cuda.gridDim.y
        a += cuda.gridDim.z


@jit
def _pass_line(x, tab, s, w, cval, scale, out):
    """The same for a small inner size B < MID_MIN (the last axis: B = 1; or a few
    interleaved channels). A block covers ``per`` positions of one line: per chunk of
    taps it loads extended positions [p0 + c0, p0 + c0 + per + kc - 1) into span
    (index pos*B + ch) and output f = pos*B + ch reads span[f + j*B] (f < per * B keeps
    that inside the span: (per + KC - 1) * B <= SPAN)."""
    span = cuda.shared.array(SPAN, dtype=w.dtype)
    taps = cuda.shared.array(KC, dtype=w.dtype)
    acc = cuda.local.array(R_LINE, dtype=w.dtype)
    tid = cuda.threadIdx.x
    na = out.shape[0]
    B = out.shape[2]
    m = out.shape[1]
    n = x.shape[1]
    k = w.shape[0]
    per = SPAN // B - (KC - 1)           # positions per block (launcher: per >= 1)
    a = cuda.blockIdx.y
    while a < na:
        pb = cuda.blockIdx.x
        while pb * per < m:
            p0 = pb * per
            for q in range(R_LINE):
                acc[q] = 0
            c0 = 0
            while c0 < k:
                kc = min(KC, k - c0)
                npos = min(per + kc - 1, m + k - 1 - p0 - c0)
                inside = s + p0 + c0 >= 0 and s + p0 + c0 + npos <= n
                cuda.syncthreads()
                if tid < kc:
                    taps[tid] = w[c0 + tid]
                t = tid
                while t < (per + kc - 1) * B:
                    if B == 1:            # a plain line: no division by the run-time B
                        pos = t
                        ch = 0
                    else:
                        pos = t // B
                        ch = t - pos * B
                    v = cval
                    if pos < npos:
                        e = p0 + c0 + pos
                        src = s + e if inside else tab[e]
                        if src >= 0:
                            v = x[a, src, ch]
                    span[t] = v
                    t += TL
                cuda.syncthreads()
                for j in range(kc):
                    wv = taps[j]
                    for q in range(R_LINE):
                        if tid + q * TL < per * B:
                            acc[q] += wv * span[tid + q * TL + j * B]
                c0 += KC
            for q in range(R_LINE):
                f = tid + q * TL
                pos = f // B if B > 1 else f
                if f < per * B and p0 + pos < m:
                    out[a, p0 + pos, f - pos * B] = acc[q] * scale
            pb += cuda.gridDim.x
        a += cuda.gridDim.y


@jit
def _pass2d(x, tab, o1, s0, s1, w0, w1, cval0, cval1, yfirst, out):
    """Two passes fused in one sweep over a 2-D plane (x, out: (A, N0, N1), (A, M0, M1)):
    along axis 1 of the plane with w0 (start s0, map at tab[0:]) and along axis 2 with
    w1 (start s1, map at tab[o1:]), in the order ``yfirst`` says (axis 1 first) or the
    other. A 32 x 32 output tile loads its input tile plus both halos once (reading
    ``cval0`` outside the input), runs the first pass into an intermediate tile of out's
    dtype (the rounding of scipy's intermediate array; where the second pass reads past
    the intermediate's edge it reads ``cval1``), then the second pass from it.
    Accumulates in w's dtype; factors up to KF taps."""
    xt = cuda.shared.array((FS, FS), dtype=w0.dtype)
    tt = cuda.shared.array(FT, dtype=out.dtype)
    t0 = cuda.shared.array(KF, dtype=w0.dtype)
    t1 = cuda.shared.array(KF, dtype=w0.dtype)
    acc = cuda.local.array(FRY, dtype=w0.dtype)
    zero = cuda.local.array(1, dtype=w0.dtype)    # a zero of the accumulation dtype
    zero[0] = 0
    tx = cuda.threadIdx.x
    ty = cuda.threadIdx.y
    tid = ty * FB + tx
    na = out.shape[0]
    m0 = out.shape[1]
    m1 = out.shape[2]
    n0 = x.shape[1]
    n1 = x.shape[2]
    k0 = w0.shape[0]
    k1 = w1.shape[0]
    ox0 = cuda.blockIdx.x * FB
    oy0 = cuda.blockIdx.y * FB
    ny = min(FB + k0 - 1, m0 + k0 - 1 - oy0)       # input tile rows read
    nx = min(FB + k1 - 1, m1 + k1 - 1 - ox0)       # input tile columns read
    yin = s0 + oy0 >= 0 and s0 + oy0 + ny <= n0
    xin = s1 + ox0 >= 0 and s1 + ox0 + nx <= n1
    if tid < k0:
        t0[tid] = w0[tid]
    if tid < k1:
        t1[tid] = w1[tid]
    a = cuda.blockIdx.z
    while a < na:
        cuda.syncthreads()                  # the previous plane's tiles are no longer read
        t = tid
        while t < FS * FS:
            r = t // FS
            c = t - r * FS
            v = cval0
            if r < ny and c < nx:
                ys = s0 + oy0 + r if yin else tab[oy0 + r]
                xs = s1 + ox0 + c if xin else tab[o1 + ox0 + c]
                if ys >= 0 and xs >= 0:
                    v = x[a, ys, xs]
            xt[r, c] = v
            t += 256
        cuda.syncthreads()
        # (row, column) loops over the intermediate tile, 8 rows by 32 columns at a time:
        # no index decoding by the run-time row length
        if yfirst:
            # intermediate rows oy0 .. oy0+FB-1, columns of the second pass's span
            cw = FB + k1 - 1
            r = ty
            while r < FB:
                c = tx
                while c < cw:
                    v = zero[0]
                    if c < nx and (xin or tab[o1 + ox0 + c] >= 0):
                        for j in range(k0):
                            v += t0[j] * xt[r + j, c]
                    else:
                        v = cval1
                    tt[r * cw + c] = v
                    c += FB
                r += 8
        else:
            # intermediate rows of the second pass's span, columns ox0 .. ox0+FB-1
            r = ty
            while r < FB + k0 - 1:
                v = zero[0]
                if r < ny and (yin or tab[oy0 + r] >= 0):
                    for j in range(k1):
                        v += t1[j] * xt[r, tx + j]
                else:
                    v = cval1
                tt[r * FB + tx] = v
                r += 8
        cuda.syncthreads()
        for q in range(FRY):
            acc[q] = 0
        if yfirst:
            for j in range(k1):
                wv = t1[j]
                for q in range(FRY):
                    acc[q] += wv * tt[(ty * FRY + q) * (FB + k1 - 1) + tx + j]
        else:
            for j in range(k0):
                wv = t0[j]
                for q in range(FRY):
                    acc[q] += wv * tt[(ty * FRY + q + j) * FB + tx]
        ox = ox0 + tx
        if ox < m1:
            for q in range(FRY):
                oy = oy0 + ty * FRY + q
                if oy < m0:
                    out[a, oy, ox] = acc[q]
        a += cuda.gridDim.z


# (x, out, accumulation) dtypes the passes are launched with: scipy.ndimage's filters
# (float32/float64 in and out, float64 sums) and the separable method (one dtype).
PASS_DTYPES = tuple((np.dtype(a), np.dtype(b), np.dtype(c)) for a, b, c in [
    (np.float32, np.float32, np.float64), (np.float32, np.float64, np.float64),
    (np.float64, np.float32, np.float64), (np.float64, np.float64, np.float64),
    (np.float32, np.float32, np.float32), (np.complex64, np.complex64, np.complex64),
    (np.complex128, np.complex128, np.complex128), (np.int64, np.int64, np.int64)])


def _ptx_signatures():
    """Every (kernel, argument types) this module launches, for tests/test_cuda_ptx.py."""
    from numba import types
    from numba.np.numpy_support import from_dtype
    i64 = types.int64
    tab = types.Array(types.int32, 1, "C")
    sigs = {_pass_mid: [], _pass_line: [], _pass2d: []}
    for xd, od, ad in PASS_DTYPES:
        ta = from_dtype(ad)
        sig = (types.Array(from_dtype(xd), 3, "C"), tab, i64, types.Array(ta, 1, "C"), ta,
               ta, types.Array(from_dtype(od), 3, "C"))
        sigs[_pass_mid].append(sig)
        sigs[_pass_line].append(sig)
        a3x, a3o = types.Array(from_dtype(xd), 3, "C"), types.Array(from_dtype(od), 3, "C")
        w1d = types.Array(ta, 1, "C")
        if ad.itemsize <= FUSED_ITEMSIZE:
            sigs[_pass2d].append((a3x, tab, i64, i64, i64, w1d, w1d, ta, ta,
                                  types.boolean, a3o))
    return sigs


PTX_SIGNATURES = _ptx_signatures


# -- launchers ---------------------------------------------------------------------------------

def _lines(a, axis):
    """(A, N, B) view of a C-contiguous device array with ``axis`` in the middle."""
    shape = tuple(a.shape)
    A = int(np.prod(shape[:axis], dtype=np.int64))
    B = int(np.prod(shape[axis + 1:], dtype=np.int64))
    return a.reshape((A, shape[axis], B))


def axis_pass(x, out, axis, start, boundary, w, cval, scale=1):
    """out = scale * (correlation of x with the 1-D ``w`` along ``axis``):
    out[..., i, ...] = scale * sum_j w[j] * X[..., start + i + j, ...], X extended by
    ``boundary`` (fill ``cval``). ``x`` and ``out`` C-contiguous device arrays whose shapes
    differ at most along ``axis``; ``w`` a host array in the accumulation dtype."""
    if out.size == 0:
        return out
    acc = w.dtype
    k = w.shape[0]
    n = x.shape[axis]
    m = out.shape[axis]
    tab = index_map(int(n), int(start), int(m) + k - 1, boundary).astype(np.int32)
    stream = current_stream()
    dtab = cuda.to_device(tab, stream=stream)
    dw = cuda.to_device(np.ascontiguousarray(w), stream=stream)
    cv = acc.type(cval)
    sc = acc.type(scale)
    x3 = _lines(x, axis)
    o3 = _lines(out, axis)
    A, M, B = o3.shape
    if B >= MID_MIN:
        grid = (-(-B // MX), min(MAX_GRID, -(-M // MBH)), min(MAX_GRID, A))
        launch(_pass_mid, grid, (MX, MY), x3, dtab, int(start), dw, cv, sc, o3)
    else:
        per = SPAN // B - (KC - 1)
        grid = (min(MAX_GRID, -(-M // per)), min(MAX_GRID, A))
        launch(_pass_line, grid, TL, x3, dtab, int(start), dw, cv, sc, o3)
    return out


def run_passes(x, out, passes, cval):
    """scipy.ndimage's separable filter step on the device (module docstring): one pass,
    or a pair (weighted or box, as the CPU launcher takes them), fused when ``fused_pair``
    allows, else two passes through scipy's intermediate in out's dtype."""
    from . import _memory
    if out.size == 0:
        return out
    cval = float(cval)
    if len(passes) == 1:
        return _one_pass(x, out, passes[0], cval)
    (a0, s0, b0, w0, _), (a1, s1, b1, w1, _) = passes
    if w0 is not None and w1 is not None:
        w0 = np.ascontiguousarray(w0, np.float64)
        w1 = np.ascontiguousarray(w1, np.float64)
        if fused_pair(x, out, a0, a1, len(w0), len(w1)):
            ay = min(a0, a1)
            yfirst = a0 == ay
            wy, sy, by, wx, sx, bx = ((w0, s0, b0, w1, s1, b1) if yfirst
                                      else (w1, s1, b1, w0, s0, b0))
            return pass2d(x, out, ay, (sy, sx), (by, bx), wy, wx, cval, cval, yfirst)
    tmp = _memory.empty(x.shape, out.dtype)     # scipy's intermediate: out's dtype
    _one_pass(x, tmp, passes[0], cval)
    return _one_pass(tmp, out, passes[1], cval)


def _one_pass(x, out, p, cval):
    axis, start, boundary, weights, size = p
    if weights is None:
        # the box: the window's sum times 1/size (within an ulp of scipy's sum/size)
        w, scale = np.ones(int(size), np.float64), 1.0 / int(size)
    else:
        w, scale = np.ascontiguousarray(weights, np.float64), 1.0
    return axis_pass(x, out, axis, start, boundary, w, cval, scale)


def fused_pair(x, out, a0, a1, k0, k1):
    """Whether two passes on axes a0, a1 run fused (``pass2d``): neighbouring axes, the
    later one the array's last (a plane of lines), factors up to KF taps."""
    return (abs(a0 - a1) == 1 and max(a0, a1) == x.ndim - 1 and k0 <= KF and k1 <= KF
            and x.ndim == out.ndim and out.dtype.itemsize <= FUSED_ITEMSIZE)


def pass2d(x, out, ay, starts, boundaries, wy, wx, cval0, cval1, yfirst):
    """The passes along axes ``ay`` (taps ``wy``) and ``ay + 1`` = the last axis (``wx``)
    fused in one sweep (``_pass2d``), in the order ``yfirst`` says; the first pass reads
    ``cval0`` past x's edges, the second ``cval1`` past the intermediate's. Output shape
    along the two axes may differ from x's (starts and boundaries as in ``axis_pass``)."""
    if out.size == 0:
        return out
    acc = wy.dtype
    ky, kx = len(wy), len(wx)
    ny, nx = x.shape[ay], x.shape[ay + 1]
    my, mx = out.shape[ay], out.shape[ay + 1]
    ty = index_map(int(ny), int(starts[0]), int(my) + ky - 1, boundaries[0])
    tx = index_map(int(nx), int(starts[1]), int(mx) + kx - 1, boundaries[1])
    stream = current_stream()
    dtab = cuda.to_device(np.concatenate([ty, tx]).astype(np.int32), stream=stream)
    A = int(np.prod(tuple(x.shape)[:ay], dtype=np.int64))
    x3 = x.reshape((A, ny, nx))
    o3 = out.reshape((A, my, mx))
    grid = (-(-mx // FB), -(-my // FB), min(MAX_GRID, A))
    launch(_pass2d, grid, (FB, 8), x3, dtab, len(ty), int(starts[0]), int(starts[1]),
           cuda.to_device(np.ascontiguousarray(wy), stream=stream),
           cuda.to_device(np.ascontiguousarray(wx), stream=stream), acc.type(cval0),
           acc.type(cval1), bool(yfirst), o3)
    return out
