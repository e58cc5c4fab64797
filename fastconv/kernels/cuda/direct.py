"""Direct (sliding-window) correlation on the GPU.

Launcher contract (as ``kernels/cpu/direct.py``)::

    correlate(x, w, out, start, boundary="constant", cval=0)

computes, over every axis, out[i] = sum_j w[j] * X[start + i + j], X being ``x`` extended
past its edges by ``boundary`` (numpy.pad names; constant with ``cval``). ``x`` and ``out``
are C-contiguous device arrays of one kernel dtype; ``w`` a host NumPy array (flipped
already); the launcher copies ``w`` and the index tables to the device and queues
everything on ``_backend.current_stream()``.

How it runs:

* Boundaries: per axis, an index map from extended index to source index (-1: the
  constant ``cval``), built on the host (``_extend.index_map``, O(output + kernel) ints)
  and copied to the device with the taps. Every boundary is then one code path: a tile
  loader reads ``x[map[e]]`` or ``cval``. Tiles that lie inside ``x`` along an axis skip
  that axis's map (the index is ``start + e``), so the interior costs no table reads.
* 2-D and 3-D (``_TILE_*``): a block of 32 x 8 threads computes a 64 x 32 output tile (each
  thread RY = 8 outputs down a column, so a warp writes 32 consecutive outputs). The
  block loads the tile plus its halo into shared memory, applying the boundary as it
  loads, and the taps of one kernel plane beside it. 3-D loops over the kernel's planes
  (one shared tile per input plane, accumulators in registers across planes): tiled in
  the two inner axes.
* Small square kernels (3x3, 5x5, 7x7, 9x9: bandwidth-bound, the common case) have their
  own kernels with the sizes as compile-time constants: per kernel column, the thread
  keeps that column's KH taps in registers and slides down its RY + KH - 1 input values,
  feeding each to every output that reads it, so each shared-memory load serves up to KH
  FMAs (KW * (RY + KH - 1) / RY loads per output instead of KH * KW; the loops unroll and
  the accumulators stay in registers: no local memory in the PTX at float32/float64).
  Other kernels use one kernel with run-time bounds (RY = 4 rows per thread so complex128
  tiles fit in 48 KB of shared memory), in chunks of up to 16 x 16 taps: one tile load
  (a 32 x 32 output tile plus a 15-wide halo) per chunk.
* 1-D (``_tile1d``): 256 threads x 4 outputs per block, the input span plus halo and the
  taps in shared memory, taps in chunks of 512.
* Ranks above 3 run as rank-3 launches over the leading axes, accumulating over the
  leading taps (``accum``).

Integers (int64) are exact (integer FMAs); NaN/Inf stay local (a direct sum reads only
the window of each output); complex64/complex128 use complex arithmetic throughout.
"""
from __future__ import annotations

import itertools

import numpy as np

from ..._extend import index_map
from ._backend import cuda, current_stream, jit, launch

__all__ = ["correlate", "PTX_SIGNATURES"]

TX = 32           # threads per block along the output's last axis (one warp: coalesced)
TY = 8            # thread rows per block
RY_SMALL = 8      # outputs per thread down a column: exact small kernels
RY_GEN = 4        # ... the run-time-bounded kernel (its tile must fit complex128)
GEN_MAX = 16      # the general tile kernel's tap chunk side (larger kernels: several)
SMALL = (3, 5, 7, 9)

T1 = 256          # 1-D: threads per block
R1 = 4            # 1-D: outputs per thread (strided by T1: coalesced)
K1_MAX = 512      # 1-D: largest kernel kept in shared memory


def _make_tile(KH, KW, RY, exact):
    """A 2-D/3-D tile kernel for kernels of at most KH x KW taps per plane (exactly, with
    compile-time loops, when ``exact``). Shared-memory shapes are these constants."""
    BH = TY * RY
    BW = TX
    SH = BH + KH - 1
    SW = BW + KW - 1
    NT = SH * SW
    NTAPS = KH * KW
    RR = RY + KH - 1
    NTHR = TX * TY

    def tile_kernel(x, maps, yo, xo, sy, sx, w, kd, kh, kw, cval, accum, out):
        """out[z, oy, ox] (+)= sum_{a,b,c} w[a,b,c] * X[z+a, sy+oy+b, sx+ox+c]; maps holds
        the z map at 0, the y map at ``yo``, the x map at ``xo`` (-1: cval). Kernels
        larger than KH x KW run in chunks of at most KH x KW taps, one tile load each."""
        tile = cuda.shared.array((SH, SW), dtype=out.dtype)
        taps = cuda.shared.array(NTAPS, dtype=out.dtype)
        acc = cuda.local.array(RY, dtype=out.dtype)
        wcol = cuda.local.array(KH, dtype=out.dtype)
        if exact:              # compile-time sizes: the loops below unroll fully
            kh = KH
            kw = KW
        tx = cuda.threadIdx.x
        ty = cuda.threadIdx.y
        tid = ty * TX + tx
        m0 = out.shape[0]
        m1 = out.shape[1]
        m2 = out.shape[2]
        n1 = x.shape[1]
        n2 = x.shape[2]
        ox0 = cuda.blockIdx.x * BW
        oy0 = cuda.blockIdx.y * BH
        ox = ox0 + tx
        base = ty * RY
        z = cuda.blockIdx.z
        while z < m0:
            for q in range(RY):
                acc[q] = 0
            for a in range(kd):
                zs = maps[z + a]
                a0 = 0
                while a0 < kh:                      # chunks of kernel rows ...
                    ch = min(KH, kh - a0)
                    b0 = 0
                    while b0 < kw:                  # ... and kernel columns
                        cw = min(KW, kw - b0)
                        # extended rows/columns this chunk reads (the maps bound them);
                        # inside x along an axis the source index is start + extended
                        # index: no map read
                        ey = oy0 + a0
                        ex = ox0 + b0
                        ny = min(BH + ch - 1, m1 + kh - 1 - ey)
                        nx = min(BW + cw - 1, m2 + kw - 1 - ex)
                        yin = sy + ey >= 0 and sy + ey + ny <= n1
                        xin = sx + ex >= 0 and sx + ex + nx <= n2
                        cuda.syncthreads()          # the previous tile is no longer read
                        t = tid
                        while t < ch * cw:
                            taps[t] = w[a, a0 + t // cw, b0 + t % cw]
                            t += NTHR
                        t = tid
                        while t < NT:
                            r = t // SW
                            c = t - r * SW
                            v = cval        # also past the span: read by no output written
                            if zs >= 0 and r < ny and c < nx:
                                ys = sy + ey + r if yin else maps[yo + ey + r]
                                xs = sx + ex + c if xin else maps[xo + ex + c]
                                if ys >= 0 and xs >= 0:
                                    v = x[zs, ys, xs]
                            tile[r, c] = v
                            t += NTHR
                        cuda.syncthreads()
                        if exact:
                            # per kernel column: its KH taps in registers, then each input
                            # value down the column feeds every output row that reads it
                            for b in range(KW):
                                for i in range(KH):
                                    wcol[i] = taps[i * KW + b]
                                for r in range(RR):
                                    v = tile[base + r, tx + b]
                                    for i in range(KH):
                                        q = r - i
                                        if q >= 0 and q < RY:
                                            acc[q] += wcol[i] * v
                        else:
                            for i in range(ch):
                                for b in range(cw):
                                    wv = taps[i * cw + b]
                                    for q in range(RY):
                                        acc[q] += wv * tile[base + q + i, tx + b]
                        b0 += KW
                    a0 += KH
            if ox < m2:
                for q in range(RY):
                    oy = oy0 + ty * RY + q
                    if oy < m1:
                        if accum:
                            out[z, oy, ox] += acc[q]
                        else:
                            out[z, oy, ox] = acc[q]
            z += cuda.gridDim.z

    tile_kernel.__name__ = f"tile_{KH}x{KW}" + ("" if exact else "_max")
    return jit(tile_kernel), BH, BW


# The 2-D/3-D tile kernels: exact small squares, then the bounded general one.
_TILE_SMALL = {k: _make_tile(k, k, RY_SMALL, True) for k in SMALL}
_TILE_GEN = _make_tile(GEN_MAX, GEN_MAX, RY_GEN, False)

S1 = T1 * R1 + K1_MAX - 1


@jit
def _tile1d(x, maps, s, w, cval, out):
    """1-D: out[o] = sum_j w[j] * X[s + o + j]; a block computes T1 * R1 outputs (thread t
    the outputs t, t + T1, ...: coalesced) from a shared span of the extended input,
    taps in chunks of K1_MAX (one span load each)."""
    span = cuda.shared.array(S1, dtype=out.dtype)
    taps = cuda.shared.array(K1_MAX, dtype=out.dtype)
    acc = cuda.local.array(R1, dtype=out.dtype)
    tid = cuda.threadIdx.x
    m = out.shape[0]
    n = x.shape[0]
    k = w.shape[0]
    o0 = cuda.blockIdx.x * (T1 * R1)
    for q in range(R1):
        acc[q] = 0
    c0 = 0
    while c0 < k:
        kc = min(K1_MAX, k - c0)
        # the span this chunk reads: T1 * R1 + kc - 1 values, fewer in the last block
        e0 = o0 + c0
        ne = min(T1 * R1 + kc - 1, m + k - 1 - e0)
        inside = s + e0 >= 0 and s + e0 + ne <= n
        cuda.syncthreads()                  # the previous chunk is no longer read
        t = tid
        while t < kc:
            taps[t] = w[c0 + t]
            t += T1
        t = tid
        while t < T1 * R1 + kc - 1:
            v = cval                  # past the span: read only by outputs beyond m
            if t < ne:
                src = s + e0 + t if inside else maps[e0 + t]
                if src >= 0:
                    v = x[src]
            span[t] = v
            t += T1
        cuda.syncthreads()
        for j in range(kc):
            wv = taps[j]
            for q in range(R1):
                acc[q] += wv * span[tid + q * T1 + j]
        c0 += K1_MAX
    for q in range(R1):
        o = o0 + tid + q * T1
        if o < m:
            out[o] = acc[q]


def _ptx_signatures():
    """Every (kernel, argument types) this module launches, for tests/test_cuda_ptx.py."""
    from numba import types
    from numba.np.numpy_support import from_dtype

    from fastconv.kernels import KERNEL_DTYPES
    i32 = types.Array(types.int32, 1, "C")
    i64 = types.int64
    sigs = {}
    for dt in KERNEL_DTYPES:
        t = from_dtype(dt)
        a1, a3 = types.Array(t, 1, "C"), types.Array(t, 3, "C")
        tile_sig = (a3, i32, i64, i64, i64, i64, a3, i64, i64, i64, t, types.boolean, a3)
        for kern, _, _ in list(_TILE_SMALL.values()) + [_TILE_GEN]:
            sigs.setdefault(kern, []).append(tile_sig)
        sigs.setdefault(_tile1d, []).append((a1, i32, i64, a1, t, a1))
    return sigs


PTX_SIGNATURES = _ptx_signatures


# -- launcher ----------------------------------------------------------------------------------

def _maps(shape, kshape, oshape, start, boundary):
    """The per-axis index maps concatenated (int32) and each axis's offset in it."""
    parts = [index_map(int(n), int(s), int(m) + int(k) - 1, boundary).astype(np.int32)
             for n, k, m, s in zip(shape, kshape, oshape, start)]
    offs = np.cumsum([0] + [len(p) for p in parts[:-1]]).tolist()
    return np.concatenate(parts), offs


def correlate(x, w, out, start, boundary="constant", cval=0):
    """Direct correlation on the device; see the module docstring for the contract."""
    from . import _memory
    if out.size == 0:
        return out
    dt = out.dtype
    if w.size == 0:
        return _memory.fill(out, 0)
    w = np.ascontiguousarray(w, dtype=dt)
    cval = dt.type(cval)
    start = tuple(int(s) for s in start)
    nd = x.ndim
    if nd == 1:
        return _correlate1d(x, w, out, start[0], boundary, cval)
    if nd <= 3:
        lead = (1,) * (3 - nd)
        x3 = x.reshape(lead + tuple(x.shape))
        o3 = out.reshape(lead + tuple(out.shape))
        w3 = w.reshape(lead + w.shape)
        s3 = (0,) * (3 - nd) + start
        _correlate3d(x3, w3, o3, s3, boundary, cval, False)
        return out
    # rank > 3: rank-3 launches over the leading axes, summed over the leading taps; a
    # leading source index that falls into the constant fill reads cval throughout
    nl = nd - 3
    lmaps = [index_map(int(n), s, int(m) + int(k) - 1, boundary)
             for n, k, m, s in zip(x.shape[:nl], w.shape[:nl], out.shape[:nl], start[:nl])]
    for i in itertools.product(*(range(m) for m in out.shape[:nl])):
        first = True
        for j in itertools.product(*(range(k) for k in w.shape[:nl])):
            src = [int(mp[a + b]) for mp, a, b in zip(lmaps, i, j)]
            const = any(s < 0 for s in src)
            xs = x[tuple(0 if const else s for s in src)]
            _correlate3d(xs, np.ascontiguousarray(w[j]), out[i], start[nl:], boundary, cval,
                         not first, all_fill=const)
            first = False
    return out


def _correlate1d(x, w, out, s, boundary, cval):
    m = out.shape[0]
    k = w.shape[0]
    maps = index_map(int(x.shape[0]), s, m + k - 1, boundary).astype(np.int32)
    stream = current_stream()
    launch(_tile1d, max(1, -(-m // (T1 * R1))), T1, x, cuda.to_device(maps, stream=stream),
           s, cuda.to_device(w, stream=stream), cval, out)
    return out


def _correlate3d(x3, w3, o3, start, boundary, cval, accum, all_fill=False):
    kd, kh, kw = w3.shape
    maps, (zo, yo, xo) = _maps(x3.shape, w3.shape, o3.shape, start, boundary)
    if all_fill:
        maps[:yo] = -1
    stream = current_stream()
    dmaps = cuda.to_device(maps, stream=stream)
    dw = cuda.to_device(w3, stream=stream)
    m0, m1, m2 = o3.shape
    if kh == kw and kh in _TILE_SMALL:
        kern, BH, BW = _TILE_SMALL[kh]
    else:
        kern, BH, BW = _TILE_GEN
    grid = (-(-m2 // BW), -(-m1 // BH), min(m0, 65535))
    launch(kern, grid, (TX, TY), x3, dmaps, yo, xo, start[1], start[2], dw, kd, kh, kw,
           cval, bool(accum), o3)
