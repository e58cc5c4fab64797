"""Convolution-layer kernels (torch.nn.functional.conv semantics) on the CPU.

Launcher contract, shared by every method in ``METHODS``::

    fn(x, w, out, stride, dilation, groups)

computes the strided, dilated, grouped *valid cross-correlation* of a batch::

    out[n, o, z, y, x] = sum_{c, a, b, e} w[o, c, a, b, e]
        * x[n, g*Cg + c, z*sz + a*dz, y*sy + b*dy, x*sx + e*dx],   g = o // (O // groups)

in the canonical 3-D layout: ``x`` (N, C, D, H, W) already padded by the caller, ``w``
(O, C/groups, KD, KH, KW), ``out`` (N, O, OD, OH, OW) C-contiguous with exactly the valid
output shape; ``stride`` and ``dilation`` are 3-tuples of ints; one real dtype (float32 or
float64) for all three. 1-D and 2-D layers are 3-D layers with leading spatial sizes of 1.
The launcher overwrites ``out``. The launchers in ``PAD_AWARE`` also take
``pads=((lo, hi),) * 3``: zero padding not yet applied to ``x``, which they fold into
the copy they make anyway. Launchers never validate (the public layer in
``fastconv.nn`` did) and keep their workspace bounded by ``WORKSPACE_BYTES`` (per chunk).

Methods:

* ``direct``: register tiles of 3 output channels x 32 (float32; 16 for float64) adjacent
  output pixels that accumulate over every tap before one store (_nn_tiles.py, generated
  by _tilegen.py); layers with fewer output channels per group or narrower rows take
  rows of the output, blocked over output channels, each tap a unit-stride axpy over the
  output row. Strided layers read a polyphase copy of the input, so every load of either
  kernel is unit-stride.
* ``gemm``: im2col into a bounded workspace (chunks of output rows), then BLAS through
  ``numpy.matmul`` writing straight into the output.
* ``fft``: each input plane and each (dilated) filter transformed once per chunk, the
  products summed over channels in the frequency domain, one inverse transform per
  output plane; strided layers subsample the stride-1 result.
* ``winograd``: F(4x4, 3x3) for 3x3, stride-1, undilated layers (in H, W): input and
  output tile transforms in numba, the 36 elementwise products as 36 batched GEMMs;
  kernels with depth taps (3x3x3) as one such 2-D layer per depth tap, added up.
"""
from __future__ import annotations

import functools
import math
import threading

import numpy as np
import scipy.fft
from numba import prange, uint64 as U

from ..._config import get_num_threads
from ..._jit import jit, run_parallel
from . import _nn_depthwise, _nn_tiles
from ._chunks import run_chunks, run_ranges, scratch, split_range
from ._tilegen import GEMM_TILES as _GEMM_TILES, TILES as _TILES

__all__ = ["METHODS", "PAD_AWARE", "APPLICABLE", "applicable", "choose_method", "layer_key",
           "direct", "gemm", "fft", "winograd", "WORKSPACE_BYTES"]

# Upper bound on the workspace one launcher holds at a time (im2col columns, Winograd
# tiles, spectra). Chunks are sized to stay below it; a single minimal chunk (one output
# row for gemm, one tile row for winograd) may exceed it on absurd shapes.
WORKSPACE_BYTES = 64 * 2**20
# Per-thread chunk sizes (see _chunks.run_chunks): im2col columns and Winograd tiles are
# produced and consumed by one thread while they sit in its cache.
GEMM_CHUNK_BYTES = 4 * 2**20
WINO_CHUNK_BYTES = 8 * 2**20
# Chunks per thread: more than one, so that a thread the OS preempts holds up little
# (chunks are handed out dynamically).
CHUNKS_PER_THREAD = 8


# -- shared helpers ---------------------------------------------------------------------

def _polyphase(x, stride, pads=None, threaded=True, work=None):
    """(N, C, D, H, W) -> (N, C, sz, sy, sx, Dq, Hq, Wq) with
    xq[..., pz, py, px, i, j, k] = xp[..., i*sz + pz, j*sy + py, k*sx + px] (zero past the
    input), xp being x zero-padded by ``pads`` ((lo, hi) per axis, None: none): a strided
    read becomes a unit-stride read of one phase. A view (no copy) when the stride is 1
    and there is no padding to apply.

    ``threaded``: copy with the numba kernel below (for methods whose kernels are numba
    parallel too) rather than numpy slices (for methods run on Python threads: numba's
    OpenMP workers keep spinning after a parallel region and would take the cores from
    those threads, 1.2-1.4x slower). ``work``: that of the kernel that reads the copy, so
    that the copy runs in parallel exactly when the kernel does."""
    n, c = x.shape[:2]
    pads = tuple(pads) if pads is not None else ((0, 0),) * 3
    if tuple(stride) == (1, 1, 1) and all(p == (0, 0) for p in pads):
        return np.ascontiguousarray(x).reshape((n, c, 1, 1, 1) + x.shape[2:])
    dims = tuple(d + lo + hi for d, (lo, hi) in zip(x.shape[2:], pads))
    q = tuple(-(-d // s) for d, s in zip(dims, stride))
    if threaded:
        xq = np.empty((n, c) + tuple(stride) + q, x.dtype)
        run_parallel(_polyphase_fill, np.ascontiguousarray(x), xq, pads[0][0], pads[1][0],
                     pads[2][0], work=xq.size if work is None else work)
        return xq
    # numpy copies on Python threads (they release the GIL), each a slab of images x
    # channels zeroed and filled while it is in cache: one thread copied a strided
    # layer's 12.8 MB input in 2.4 ms of a 19 ms call.
    xq = np.empty((n, c) + tuple(stride) + q, x.dtype)
    copies = []
    for phase in np.ndindex(*stride):
        dst, src = [], []
        for p, s, (lo, _), size, qq in zip(phase, stride, pads, x.shape[2:], q):
            q0 = min(qq, max(0, -((p - lo) // s)))          # first q with q*s + p >= lo
            q1 = min(qq, max(q0, -((p - lo - size) // s)))  # first q past the input
            dst.append(slice(q0, q1))
            src.append(slice(q0 * s + p - lo, q0 * s + p - lo + (q1 - q0 - 1) * s + 1, s)
                       if q1 > q0 else slice(0, 0))
        copies.append((phase + tuple(dst), tuple(src)))
    per = max(1, (1 << 20) // max(1, xq[0, 0].nbytes))        # ~1 MiB slabs
    slabs = [(i, c0, min(c, c0 + per)) for i in range(n) for c0 in range(0, c, per)]

    def fill(slab):
        i, c0, c1 = slab
        block = xq[i, c0:c1]
        block[...] = 0
        for dst, src in copies:
            block[(slice(None),) + dst] = x[(i, slice(c0, c1)) + src]

    run_chunks(fill, slabs, get_num_threads())
    return xq


@jit(parallel=True)
def _polyphase_fill(x, xq, lz, ly, lx):
    # In parallel and in numba rather than numpy pad and slice copies: one pass instead
    # of two, and a strided layer's kernel follows right away (~0.2 ms of single-threaded
    # numpy work in between let the worker threads fall asleep; their wake-up cost
    # another ~0.3 ms on a 2 ms layer). Padded coordinate i reads x at i - lo.
    n_img, n_ch, sz, sy, sx, dq, hq, wq = xq.shape
    d, h, w = x.shape[2], x.shape[3], x.shape[4]
    for job in prange(n_img * n_ch * sz * sy * sx):
        px = job % sx
        r1 = job // sx
        py = r1 % sy
        r2 = r1 // sy
        pz = r2 % sz
        r3 = r2 // sz
        c = r3 % n_ch
        n = r3 // n_ch
        # Output columns k0 <= k < k1 read x (at k*sx + px - lx); the rest are padding.
        k0 = min(wq, max(0, (lx - px + sx - 1) // sx))
        k1 = min(wq, max(k0, (w + lx - px + sx - 1) // sx))
        for i in range(dq):
            iz = i * sz + pz - lz
            for j in range(hq):
                iy = j * sy + py - ly
                dst = xq[n, c, pz, py, px, i, j]
                if iz < 0 or iz >= d or iy < 0 or iy >= h:
                    dst[:] = 0
                    continue
                dst[:k0] = 0
                dst[k1:] = 0
                dmid = dst[k0:k1]
                src = x[n, c, iz, iy, k0 * sx + px - lx:]
                if sx == 1:
                    for k in range(k1 - k0):     # a plain copy: vectorised
                        dmid[k] = src[k]
                else:
                    for k in range(k1 - k0):
                        dmid[k] = src[k * sx]


def _balance_chunks(threads):
    """Chunks wanted for load balance: none beyond the cache limit on one thread."""
    return CHUNKS_PER_THREAD * threads if threads > 1 else 1


# -- direct -----------------------------------------------------------------------------

# Register-tiled kernels per dtype (see _tilegen.py); the row kernel below takes the
# layers they cannot (fewer output channels per group than a tile, narrow rows).
# Keyed by dtype objects, not names: numpy's dtype.name is a slow property (~5 us).
_TILE = {np.dtype(name): pq for name, pq in _TILES.items()}
_TILED = {np.dtype(name): getattr(_nn_tiles, f"tiled_{p}x{q}")
          for name, (p, q) in _TILES.items()}
_BATCHED_GEMM = {np.dtype(name): (getattr(_nn_tiles, f"batched_gemm_{m}x{n}"), m, n)
                 for name, (m, n) in _GEMM_TILES.items()}


@jit(parallel=True)
def _direct_kernel(xq, wg, gphase, goff, zph, zoff, yph, yoff, out, groups, rpj):
    # One job = `rpj` output rows (n, oz, oy) of a block of 4 output channels (rpj > 1
    # when rows are too short to pay a job's overhead: depthwise layers). The taps of
    # each kernel row come in groups of 4 that read one polyphase input row at 4 offsets
    # (gphase, goff; short groups repeat a tap with weight 0), so the inner loop does 16
    # FMAs per input position from 4 loads of the input row and 4 load/stores of output
    # rows that stay in L1: unit stride, vectorised by LLVM, FMA-bound rather than
    # load/store-bound like a one-tap axpy.
    n_img, n_out, od, oh, ow = out.shape
    og = n_out // groups
    nob = (og + 3) // 4
    rows = od * oh
    nrj = (rows + rpj - 1) // rpj
    for job in prange(n_img * groups * nob * nrj):
        rj = job % nrj
        u = job // nrj
        blk = u % nob
        u //= nob
        g = u % groups
        n = u // groups
        o0 = g * og + blk * 4
        cnt = min(4, (g + 1) * og - o0)
        for r in range(rj * rpj, min(rows, (rj + 1) * rpj)):
            oz = r // oh
            oy = r - oz * oh
            _direct_row(xq, wg, gphase, goff, zph, zoff, yph, yoff, out, n, g, o0, cnt,
                        oz, oy)


@jit()
def _direct_row(xq, wg, gphase, goff, zph, zoff, yph, yoff, out, n, g, o0, cnt, oz, oy):
    # Output row (n, oz, oy) of channels o0 .. o0+cnt-1 (cnt <= 4). Tap a of the depth
    # axis reads polyphase plane zph[a] at row oz + zoff[a] (tables, no divisions in
    # here); likewise b on the height axis.
    ow = out.shape[4]
    cg, kd, kh, ng = wg.shape[1], wg.shape[2], wg.shape[3], wg.shape[4]
    for o in range(o0, o0 + cnt):
        orow = out[n, o, oz, oy]
        for i in range(ow):
            orow[i] = 0
    for c in range(cg):
        ci = g * cg + c
        for a in range(kd):
            pz = zph[a]
            iz = oz + zoff[a]
            for b in range(kh):
                py = yph[b]
                iy = oy + yoff[b]
                for q in range(ng):
                    src = xq[n, ci, pz, py, gphase[q], iz, iy]
                    # Views starting at each tap's offset: indexing them with the loop
                    # counter alone lets numba drop its negative-index check, without
                    # which LLVM cannot vectorise (10x on a depthwise layer).
                    s0 = src[goff[q, 0]:]
                    s1 = src[goff[q, 1]:]
                    s2 = src[goff[q, 2]:]
                    s3 = src[goff[q, 3]:]
                    if cnt == 4:
                        w00 = wg[o0, c, a, b, q, 0]
                        w01 = wg[o0, c, a, b, q, 1]
                        w02 = wg[o0, c, a, b, q, 2]
                        w03 = wg[o0, c, a, b, q, 3]
                        w10 = wg[o0 + 1, c, a, b, q, 0]
                        w11 = wg[o0 + 1, c, a, b, q, 1]
                        w12 = wg[o0 + 1, c, a, b, q, 2]
                        w13 = wg[o0 + 1, c, a, b, q, 3]
                        w20 = wg[o0 + 2, c, a, b, q, 0]
                        w21 = wg[o0 + 2, c, a, b, q, 1]
                        w22 = wg[o0 + 2, c, a, b, q, 2]
                        w23 = wg[o0 + 2, c, a, b, q, 3]
                        w30 = wg[o0 + 3, c, a, b, q, 0]
                        w31 = wg[o0 + 3, c, a, b, q, 1]
                        w32 = wg[o0 + 3, c, a, b, q, 2]
                        w33 = wg[o0 + 3, c, a, b, q, 3]
                        r0 = out[n, o0, oz, oy]
                        r1 = out[n, o0 + 1, oz, oy]
                        r2 = out[n, o0 + 2, oz, oy]
                        r3 = out[n, o0 + 3, oz, oy]
                        for i in range(ow):
                            e0 = s0[i]
                            e1 = s1[i]
                            e2 = s2[i]
                            e3 = s3[i]
                            r0[i] += w00 * e0 + w01 * e1 + w02 * e2 + w03 * e3
                            r1[i] += w10 * e0 + w11 * e1 + w12 * e2 + w13 * e3
                            r2[i] += w20 * e0 + w21 * e1 + w22 * e2 + w23 * e3
                            r3[i] += w30 * e0 + w31 * e1 + w32 * e2 + w33 * e3
                    else:
                        for o in range(o0, o0 + cnt):
                            w0 = wg[o, c, a, b, q, 0]
                            w1 = wg[o, c, a, b, q, 1]
                            w2 = wg[o, c, a, b, q, 2]
                            w3 = wg[o, c, a, b, q, 3]
                            orow = out[n, o, oz, oy]
                            for i in range(ow):
                                orow[i] += (w0 * s0[i] + w1 * s1[i]
                                            + w2 * s2[i] + w3 * s3[i])


def _tap_groups(w, sx, dx):
    """Group the taps of each kernel row (last axis) by input phase, four at a time.

    Returns (wg, gphase, goff): wg (O, Cg, KD, KH, G, 4) weights, gphase (G,) the
    polyphase column each group reads, goff (G, 4) each tap's offset in that row. A
    group short of four repeats its first tap with weight 0: it reads an element the
    output's window holds anyway, so a NaN there changes nothing."""
    kw = w.shape[-1]
    by_phase = {}
    for e in range(kw):
        by_phase.setdefault((e * dx) % sx, []).append(e)
    groups = []
    for ph in sorted(by_phase):
        taps = by_phase[ph]
        for i in range(0, len(taps), 4):
            groups.append((ph, taps[i:i + 4]))
    wg = np.zeros(w.shape[:-1] + (len(groups), 4), w.dtype)
    gphase = np.empty(len(groups), np.int64)
    goff = np.empty((len(groups), 4), np.int64)
    for q, (ph, taps) in enumerate(groups):
        gphase[q] = ph
        for j in range(4):
            e = taps[j] if j < len(taps) else taps[0]
            goff[q, j] = (e * dx) // sx
            if j < len(taps):
                wg[..., q, j] = w[..., e]
    return wg, gphase, goff


@functools.lru_cache(maxsize=64)
def _tap_offsets(xq_shape, w_shape, dilation):
    """toff of _nn_tiles (uint64, read-only): the offset of every flat (c, a, b, e) tap
    from the input element under output (0, 0, 0), in the flattened polyphase input."""
    n_img, n_ch, sz, sy, sx, dq, hq, wq = xq_shape
    n_out, cg, kd, kh, kw = w_shape
    dz, dy, dx = dilation
    a, b, e = np.meshgrid(np.arange(kd) * dz, np.arange(kh) * dy, np.arange(kw) * dx,
                          indexing="ij")
    chan_stride = sz * sy * sx * dq * hq * wq
    within = ((((a % sz) * sy + b % sy) * sx + e % sx) * dq + a // sz) * hq * wq \
        + (b // sy) * wq + e // sx
    toff = (np.arange(cg)[:, None] * chan_stride + within.reshape(1, -1)).reshape(-1)
    toff = toff.astype(np.uint64)
    toff.flags.writeable = False
    return toff


def _tiled_weights(w, groups):
    """wt of _nn_tiles: wt[g, blk, t, j] = w[g*og + start(blk) + j, t], t the flat
    (c, a, b, e) tap, blocks of Q output channels (the last one starting early)."""
    og = w.shape[0] // groups
    q = _TILE[w.dtype][1]
    blocks = -(-og // q)
    wt = np.empty((groups, blocks, w[0].size, q), w.dtype)
    _relayout_weights(np.ascontiguousarray(w).reshape(groups, og, -1), wt)
    return wt


@jit()
def _relayout_weights(wg, wt):
    # In numba: numpy's fancy indexing and transposed copy took ~0.1 ms of a 2 ms layer.
    groups, blocks, taps, q = wt.shape
    og = wg.shape[1]
    for g in range(groups):
        for blk in range(blocks):
            o0 = min(blk * q, og - q)
            for t in range(taps):
                for j in range(q):
                    wt[g, blk, t, j] = wg[g, o0 + j, t]


def _tiled_args(xq, w_shape, wt, out, dilation, groups):
    """Arguments of a _nn_tiles kernel for this layer."""
    n_img, n_ch, sz, sy, sx, dq, hq, wq = xq.shape
    chan_stride = sz * sy * sx * dq * hq * wq
    toff = _tap_offsets(xq.shape, tuple(w_shape), tuple(dilation))
    return (xq.reshape(-1), toff, wt, out, groups, w_shape[1], chan_stride,
            n_ch * chan_stride, hq, wq)


def _tiled_ok(out_shape, w_shape, groups, dtype):
    p, q = _TILE[np.dtype(dtype)]
    return out_shape[4] >= p and w_shape[0] // groups >= q


def direct(x, w, out, stride, dilation, groups, pads=None):
    """Direct method (see the module docstring for the contract)."""
    if out.size == 0:
        return out
    work = out.size * (w.size // w.shape[0])       # outputs x taps per output
    if _tiled_ok(out.shape, w.shape, groups, out.dtype):
        # numpy work first, so that the parallel polyphase copy and the kernel run back
        # to back while the worker threads are awake.
        wt = _tiled_weights(w, groups)
        xq = _polyphase(x, stride, pads, work=work)
        run_parallel(_TILED[out.dtype],
                     *_tiled_args(xq, w.shape, wt, out, dilation, groups), work=work)
        return out
    if w.shape[1] == 1:
        return _depthwise(x, w, out, stride, dilation, pads, work)
    xq = _polyphase(x, stride, pads, work=work)
    wg, gphase, goff = _tap_groups(w, stride[2], dilation[2])
    # Rows per job: ~64K multiply-adds per job, while keeping 8 jobs per thread.
    n_img, n_out, od, oh, ow = out.shape
    cg, kd, kh, ng = wg.shape[1:5]
    rows = od * oh
    per_row = ow * cg * kd * kh * ng * 16
    blocks = n_img * groups * -(-(n_out // groups) // 4)
    rpj = max(1, min(rows, 65536 // max(1, per_row)))
    while rpj > 1 and blocks * -(-rows // rpj) < 8 * get_num_threads():
        rpj //= 2
    taps_z = np.arange(kd) * dilation[0]
    taps_y = np.arange(kh) * dilation[1]
    run_parallel(_direct_kernel, xq, wg, gphase, goff, taps_z % stride[0],
                 taps_z // stride[0], taps_y % stride[1], taps_y // stride[1], out, groups,
                 rpj, work=work)
    return out


def _depthwise(x, w, out, stride, dilation, pads, work):
    """A layer whose output channels read one input channel each (C/groups == 1, any
    channel multiplier): the plane-per-job kernel of _nn_depthwise."""
    x = np.ascontiguousarray(x)
    q, lo, (taps, cnt, phase, off) = _nn_depthwise.plan(x.shape, w.shape, stride,
                                                         dilation, pads)
    wflat = np.ascontiguousarray(w).reshape(w.shape[0], -1)
    # Slots past a group's count (taps -1) get some weight of the row: never read.
    wt = np.take(wflat, taps, axis=1, mode="clip")
    # The kernel indexes x and out flat.
    dst = out if out.flags.c_contiguous else np.empty(out.shape, out.dtype)
    run_parallel(_nn_depthwise.forward, x, wt, cnt, phase, off, dst, *stride, *lo, *q,
                 work=work)
    if dst is not out:
        out[...] = dst
    return out


def depthwise_weight_grad(x, go, grad, stride, dilation, pads=None):
    """grad (O, 1, *k) of a depthwise layer (C/groups == 1) from x (unpadded when
    ``pads`` is given) and grad_output go (N, O, *out)."""
    x = np.ascontiguousarray(x)
    go = np.ascontiguousarray(go)
    q, lo, (taps, cnt, phase, off) = _nn_depthwise.plan(x.shape, grad.shape, stride,
                                                         dilation, pads)
    g2 = grad.reshape(grad.shape[0], -1)
    run_parallel(_nn_depthwise.weight_grad, x, go, taps, cnt, phase, off, g2, *stride,
                 *lo, *q, work=go.size * g2.shape[1])
    return grad


# -- im2col + GEMM ----------------------------------------------------------------------

@jit()
def _im2col(xq, n, c0, cg, kd, kh, kw, sz, sy, sx, dz, dy, dx, oh, ow, r0, r1, cols):
    # cols[k, (r - r0)*ow + i] = x[n, c0 + c, oz*sz + a*dz, oy*sy + b*dy, i*sx + e*dx] for
    # output rows r = oz*oh + oy in [r0, r1); k = ((c*kd + a)*kh + b)*kw + e. A tap reads
    # one polyphase plane (its phase is fixed by a*dz mod sz, ...), output row (oz, oy)
    # from plane row (oz + a*dz//sz, oy + b*dy//sy): every copy is a unit-stride run of
    # `ow` values at an offset kept incrementally (no index arithmetic per element).
    taps = kd * kh * kw
    hq = xq.shape[6]
    wq = xq.shape[7]
    # Rows of at most 8 (7x7 maps): runs that short cost more in loop set-up than in
    # copying, so every column takes its offset in the plane from one table instead
    # (512 channels, 7x7, one thread: 0.21 against 0.33 ms an image).
    short = ow <= 8
    npos = (r1 - r0) * ow
    idx = np.empty(npos if short else 0, np.uint64)
    if short:
        p = 0
        for r in range(r0, r1):
            oz = r // oh
            oy = r - oz * oh
            for i in range(ow):
                idx[p] = U((oz * hq + oy) * wq + i)
                p += 1
    for k in range(cg * taps):
        c = k // taps
        t = k - c * taps
        a = t // (kh * kw)
        t -= a * kh * kw
        b = t // kw
        e = t - b * kw
        ez = a * dz
        ey = b * dy
        ex = e * dx
        flat = xq[n, c0 + c, ez % sz, ey % sy, ex % sx].reshape(-1)
        zb = ez // sz
        yb = ey // sy
        xb = ex // sx
        dst = cols[k]
        if short:
            base = U((zb * hq + yb) * wq + xb)
            for q in range(U(npos)):
                dst[q] = flat[base + idx[q]]
            continue
        oz = r0 // oh
        oy = r0 - oz * oh
        pos = 0
        for _ in range(r0, r1):
            src0 = ((oz + zb) * hq + oy + yb) * wq + xb
            d = dst[pos:pos + ow]           # views: no per-element negative-index check
            sv = flat[src0:src0 + ow]
            for i in range(ow):
                d[i] = sv[i]
            pos += ow
            oy += 1
            if oy == oh:
                oy = 0
                oz += 1


def _pointwise_columns(x, stride, pads, osz):
    """(N, C, OD*OH*OW): the input values a 1x1x1 layer reads, as GEMM columns. A view
    of x for stride 1 without padding; else the strided positions gathered once (the
    padding, rare on a 1x1 layer, applied first)."""
    if pads is not None and any(p != (0, 0) for p in map(tuple, pads)):
        x = _zero_padded(x, pads)
    sub = x[(slice(None), slice(None)) + tuple(slice(0, (m - 1) * s + 1, s)
                                               for m, s in zip(osz, stride))]
    return np.ascontiguousarray(sub).reshape(sub.shape[:2] + (-1,))


def _gemm_input(x, stride, pads, k, osz):
    """(pointwise, xq): what the GEMM methods (forward and weight gradient) read. A
    1x1x1 layer (any stride) needs no im2col: the input planes, subsampled by the
    stride, are the GEMM's columns; only a strided layer copies them (1/stride^d of the
    input), none of the other phases. Other layers: the polyphase copy im2col reads."""
    if tuple(k) == (1, 1, 1):
        return True, _pointwise_columns(x, stride, pads, osz)
    return False, _polyphase(x, stride, pads, threaded=False)


def _gemm_staged(xq, pointwise, wm, out_m, ksize, stride, dilation, oh, ow, threads):
    """gemm for layers with fewer GEMMs than threads (batch 1, deep): per (image,
    group), the whole im2col matrix built by all threads (each a range of input
    channels: contiguous rows of it), then its GEMM split by output channels (or by
    columns when the channels are few), each part a one-thread BLAS call. Two halves of
    a 128 x 1152 x 784 GEMM take 1.33 ms against 2.3-2.5 ms for the whole on one thread
    and 1.2-1.4 ms on OpenBLAS's two."""
    n_img, groups, o_g, cols_n = out_m.shape
    k = wm.shape[2]
    taps = ksize[0] * ksize[1] * ksize[2]
    cg = k // taps
    rows = cols_n // ow
    for n in range(n_img):
        for g in range(groups):
            if pointwise:
                cols = xq[n, g * cg:(g + 1) * cg]
            else:
                cols = scratch("nn.gemm.full", (k, cols_n), wm.dtype)
                run_chunks(lambda c: _im2col(xq, n, g * cg + c[0], c[1] - c[0], *ksize,
                                             *stride, *dilation, oh, ow, 0, rows,
                                             cols[c[0] * taps:c[1] * taps]),
                           split_range(cg, threads, 1), threads)
            a, y = wm[g], out_m[n, g]
            if o_g >= 32 * threads:
                parts = [(a[o0:o1], cols, y[o0:o1])
                         for o0, o1 in split_range(o_g, threads, 32)]
            else:
                parts = [(a, cols[:, p0:p1], y[:, p0:p1])
                         for p0, p1 in split_range(cols_n, threads, 256)]
            run_chunks(lambda p: np.matmul(p[0], p[1], out=p[2]), parts, threads)


def _image_columns(xq, pointwise, n0, m, c0, c1, ksize, stride, dilation, oh, ow, cols):
    """The im2col columns of images n0..n0+m, input channels c0..c1, side by side in
    cols (taps x (c1 - c0), m x positions), for the images-side-by-side GEMMs (forward
    and weight gradient). A 1x1 layer's columns are its (subsampled) input planes. Each
    image's columns go straight into their strided place: a copy through a contiguous
    buffer moved one short row per numpy call (3-4 ms of a 512-channel 7x7 layer's 23 ms
    at batch 8, one thread)."""
    c3 = cols.reshape(cols.shape[0], m, -1)
    if pointwise:
        c3[...] = xq[n0:n0 + m, c0:c1].transpose(1, 0, 2)
        return
    rows = c3.shape[2] // ow
    for j in range(m):
        _im2col(xq, n0 + j, c0, c1 - c0, *ksize, *stride, *dilation, oh, ow, 0, rows,
                c3[:, j])


def _gemm_images(xq, pointwise, wm, out3, ksize, stride, dilation, oh, ow, threads):
    """gemm for small maps (fewer than 256 output positions: 7x7, 14x14) of several
    images, groups 1: the columns of a block of images side by side in one GEMM, its
    result copied to each image's output. OpenBLAS runs a 512 x 4608 x 49 GEMM (one 7x7
    image) at 82 GF/s and ~100 from ~400 columns. Blocks: at least one per thread."""
    n_img, n_out, npos = out3.shape
    k = wm.shape[1]
    taps = ksize[0] * ksize[1] * ksize[2]
    nb = max(1, min(1024 // npos, -(-n_img // threads)))

    def run(n0):
        n1 = min(n_img, n0 + nb)
        m = n1 - n0
        cols = scratch("nn.gemm.imgs", (k, m * npos), wm.dtype)
        _image_columns(xq, pointwise, n0, m, 0, k // taps, ksize, stride, dilation, oh, ow,
                       cols)
        y = scratch("nn.gemm.y", (n_out, m * npos), wm.dtype)
        np.matmul(wm, cols, out=y)
        out3[n0:n1] = y.reshape(n_out, m, npos).transpose(1, 0, 2)

    run_chunks(run, range(0, n_img, nb), threads)


def gemm(x, w, out, stride, dilation, groups, pads=None):
    """im2col + BLAS method (see the module docstring for the contract)."""
    if out.size == 0:
        return out
    n_img, n_out, od, oh, ow = out.shape
    o_g = n_out // groups
    cg, kd, kh, kw = w.shape[1:]
    k = cg * kd * kh * kw
    rows = od * oh
    pointwise, xq = _gemm_input(x, stride, pads, (kd, kh, kw), (od, oh, ow))
    # reshape, not a contiguous copy: a transposed weight (a strided phase of a transposed
    # convolution, nn._adjoint_phases) stays a view that BLAS reads as it is.
    wm = w.reshape(groups, o_g, k)
    out_m = out.reshape(n_img, groups, o_g, rows * ow)
    threads = get_num_threads()
    if groups == 1 and n_img > 1 and rows * ow < 256:
        _gemm_images(xq, pointwise, wm[0], out.reshape(n_img, n_out, rows * ow),
                     (kd, kh, kw), stride, dilation, oh, ow, threads)
        return out
    # Output rows per chunk: columns within GEMM_CHUNK_BYTES (they stay in cache for the
    # GEMM), CHUNKS_PER_THREAD chunks per thread when there is enough work, and GEMMs
    # at least ~256 columns wide.
    per_row = k * ow * x.itemsize
    pieces = max(-(-rows // max(1, GEMM_CHUNK_BYTES // per_row)),
                 -(-_balance_chunks(threads) // (n_img * groups)))
    pieces = max(1, min(pieces, rows, rows * ow // 256))
    if pointwise:
        # No columns to build, so none to keep in cache: one chunk per thread. More only
        # cut the GEMM into narrower ones (a 1x1 layer of one 56x56 image, two threads:
        # 12 chunks of 261 columns, 0.76-0.82 ms for 64 -> 256 channels; two, 0.61-0.63;
        # 96 -> 384: 1.48-1.50 -> 1.21-1.25; the col2im route's 288 x 64 GEMM 0.84-0.91
        # -> 0.69-0.96). Not for weight gradients: there it was 4-5 % slower.
        pieces = max(1, min(rows, -(-threads // (n_img * groups))))
    chunk = -(-rows // pieces)
    n_parts = n_img * groups * -(-rows // chunk)
    # Fewer (image, group, rows) chunks than the threads want (one long 1-D row, a
    # small deep layer of one image): build each image's columns once, split over the
    # threads by channels, then split its GEMM over the threads (_gemm_staged). Splitting
    # rows further would shrink every GEMM below what BLAS runs at full speed, and
    # splitting output channels per chunk would build the same columns twice.
    if (threads > 1 and n_parts < 2 * threads
            and k * rows * ow * x.itemsize <= WORKSPACE_BYTES // 2):
        _gemm_staged(xq, pointwise, wm, out_m, (kd, kh, kw), stride, dilation, oh, ow,
                     threads)
        return out
    # Too few chunks, and columns too large to build whole: split the output channels
    # too, each part building its own columns.
    osplit = 1
    if threads > 1 and n_parts < 2 * threads and o_g >= 64:
        osplit = min(o_g // 32, -(-2 * threads // n_parts))
    ostep = -(-o_g // osplit)
    chunks = [(n, g, r0, min(rows, r0 + chunk), o0, min(o_g, o0 + ostep))
              for n in range(n_img) for g in range(groups) for r0 in range(0, rows, chunk)
              for o0 in range(0, o_g, ostep)]

    def run(c):
        n, g, r0, r1, o0, o1 = c
        if pointwise:
            cols = xq[n, g * cg:(g + 1) * cg, r0 * ow:r1 * ow]
        else:
            cols = scratch("nn.gemm.cols", (k, (r1 - r0) * ow), x.dtype)
            _im2col(xq, n, g * cg, cg, kd, kh, kw, *stride, *dilation, oh, ow, r0, r1,
                    cols)
        np.matmul(wm[g, o0:o1], cols, out=out_m[n, g, o0:o1, r0 * ow:r1 * ow])

    run_chunks(run, chunks, threads)
    return out


# -- col2im (the "col2im" kind) ------------------------------------------------------

@jit()
def _col2im(y, out, sz, sy, sx, pz, py, px, dz, dy, dx, j0, j1):
    # out[n, o, z*sz - pz + a*dz, i*sy - py + b*dy, j*sx - px + e*dx] += y[n, o, a, b, e,
    # z, i, j] for the output planes (n, o) numbered j0 <= n*O + o < j1, gathered one
    # output row at a time: the input rows (z, i) and taps (a, b) that reach the row are
    # summed into a row buffer held in L1, then stored once. Along the row, output
    # column j*sx + off_e is phase off_e mod sx, position j + off_e div sx within it:
    # each tap adds one contiguous, vectorised run into its phase's part of the buffer,
    # and the phases are interleaved on the store. (Adding each tap straight into the
    # output with stride sx, after zeroing it, took 0.93 ms for a 3x3 stride-2 layer to
    # 32 channels of 112x112, batch 1, one thread; this takes ~0.2.)
    n_img, n_o, kd, kh, kw, di, hi, wi = y.shape
    do, ho, wo = out.shape[2], out.shape[3], out.shape[4]
    wq = (wo + sx - 1) // sx
    acc = np.empty(sx * wq, y.dtype)            # phase r's positions at [r*wq, (r+1)*wq)
    er = np.empty(kw, np.int64)
    eq = np.empty(kw, np.int64)
    for e in range(kw):
        off = e * dx - px
        er[e] = off % sx
        eq[e] = (off - er[e]) // sx
    for job in range(j0, j1):
        n = job // n_o
        o = job - n * n_o
        for oz in range(do):
            for oy in range(ho):
                acc[:] = 0
                for a in range(kd):
                    tz = oz + pz - a * dz
                    if tz % sz != 0 or tz < 0 or tz // sz >= di:
                        continue
                    z = tz // sz
                    for b in range(kh):
                        ti = oy + py - b * dy
                        if ti % sy != 0 or ti < 0 or ti // sy >= hi:
                            continue
                        i = ti // sy
                        for e in range(kw):
                            r = er[e]
                            q = eq[e]
                            u0 = max(0, q)
                            u1 = min((wo - r + sx - 1) // sx, wi + q)
                            if u1 <= u0:
                                continue
                            src = y[n, o, a, b, e, z, i]
                            base = U(r * wq)
                            s0 = U(u0 - q)
                            for t in range(U(u1 - u0)):
                                acc[base + U(u0) + t] += src[s0 + t]
                dst = out[n, o, oz, oy]
                if sx == 1:
                    for t in range(U(wo)):
                        dst[t] = acc[t]
                elif sx == 2:
                    for u in range(U(wo // 2)):
                        dst[2 * u] = acc[u]
                        dst[2 * u + 1] = acc[U(wq) + u]
                    if wo % 2:
                        dst[wo - 1] = acc[wq - 1]
                else:
                    for r in range(sx):
                        for u in range((wo - r + sx - 1) // sx):
                            dst[u * sx + r] = acc[r * wq + u]


def col2im(y, out, stride, padding, dilation):
    """The "col2im" launcher (see kernels/__init__.py): overwrites ``out``. Planes split
    over Python threads, not a numba parallel region: the GEMM before it (and the next
    layer's) runs on those threads, which numba's spinning OpenMP workers would slow."""
    y = np.ascontiguousarray(y)
    threads = get_num_threads() if y.size >= 1 << 16 else 1
    run_ranges(lambda j0, j1: _col2im(y, out, *stride, *padding, *dilation, j0, j1),
               out.shape[0] * out.shape[1], threads, CHUNKS_PER_THREAD)
    return out


# -- transposed convolutions of few channels per group (the "layer_transposed" kind) ---

@jit()
def _transposed_planes(x, w, out, sz, sy, sx, pz, py, px, dz, dy, dx, groups, j0, j1):
    # out[n, g*og + j, z*sz - pz + a*dz, i*sy - py + b*dy, k*sx - px + e*dx] +=
    # w[g*cg + c, j, a, b, e] * x[n, g*cg + c, z, i, k], for the output planes (n, o)
    # numbered j0 <= n*O + o < j1.
    # Output position (oz, oy, ox) is phase (oz mod sz, oy mod sy, ox mod sx), position
    # (oz div sz, ...) within it. For one tap, consecutive input rows and columns land on
    # consecutive positions of one phase: with the input plane copied into rows of W2
    # values (zeros past its width) and each phase's rows W2 apart in `pb`, a tap is
    # one unit-stride, vectorised pass over the whole plane, whatever the stride (a
    # short loop per row and a strided store per product were each 4-5x slower here).
    # Values past a row's end land in margins of `pb` (zeros from the copy's padding, or
    # input values in columns the interleave at the end never reads).
    n_img, n_in, di, hi, wi = x.shape
    n_out, do, ho, wo = out.shape[1], out.shape[2], out.shape[3], out.shape[4]
    cg = n_in // groups
    og = n_out // groups
    kd, kh, kw = w.shape[2], w.shape[3], w.shape[4]
    dq = (do + sz - 1) // sz
    hq = (ho + sy - 1) // sy
    wq = (wo + sx - 1) // sx
    tr = np.empty(kw, np.int64)
    tq = np.empty(kw, np.int64)
    m = 1
    for e in range(kw):
        off = e * dx - px
        tr[e] = off % sx
        tq[e] = (off - tr[e]) // sx
        m = max(m, 1 + abs(tq[e]))
    w2 = max(wi, wq) + 2 * m + 1
    pb = np.empty(sz * sy * sx * dq * hq * w2 + 2 * w2, out.dtype)
    xp = np.zeros(di * hi * w2 + w2, x.dtype)
    outf = out.reshape(-1)
    for job in range(j0, j1):
        n = job // n_out
        o = job - n * n_out
        g = o // og
        j = o - g * og
        pb[:] = 0
        for c in range(cg):
            ci = g * cg + c
            for z in range(di):
                for i in range(hi):
                    src = x[n, ci, z, i]
                    row = U((z * hi + i) * w2)
                    for k in range(U(wi)):
                        xp[row + k] = src[k]
            for a in range(kd):
                for z in range(di):
                    oz = z * sz - pz + a * dz
                    if oz < 0 or oz >= do:
                        continue
                    rz = oz % sz
                    uz = oz // sz
                    for b in range(kh):
                        shift = b * dy - py
                        ry = shift % sy
                        sh = (shift - ry) // sy          # position u = i + sh
                        nqy = (ho - ry + sy - 1) // sy
                        i0 = max(0, -sh)
                        i1 = min(hi, nqy - sh)
                        if i1 <= i0:
                            continue
                        for e in range(kw):
                            rx = tr[e]
                            if tq[e] >= (wo - rx + sx - 1) // sx or tq[e] + wi <= 0:
                                continue                 # no column of this tap lands
                            wv = w[ci, j, a, b, e]
                            dst = U(((((rz * sy + ry) * sx + rx) * dq + uz) * hq
                                     + i0 + sh) * w2 + m + tq[e])
                            srcb = U((z * hi + i0) * w2)
                            for t in range(U((i1 - i0) * w2)):
                                pb[dst + t] += wv * xp[srcb + t]
        # Interleave the phases into the output, one output row at a time (stride 2
        # along the row: both phases in one loop of contiguous stores).
        for oz in range(do):
            rz = oz % sz
            uz = oz // sz
            for oy in range(ho):
                ry = oy % sy
                uy = oy // sy
                d0 = U((((n * n_out + o) * do + oz) * ho + oy) * wo)
                if sx == 2:
                    s0 = U(((((rz * sy + ry) * 2) * dq + uz) * hq + uy) * w2 + m)
                    s1 = U(((((rz * sy + ry) * 2 + 1) * dq + uz) * hq + uy) * w2 + m)
                    for ux in range(U(wo // 2)):
                        outf[d0 + 2 * ux] = pb[s0 + ux]
                        outf[d0 + 2 * ux + 1] = pb[s1 + ux]
                    if wo % 2:
                        outf[d0 + U(wo - 1)] = pb[s0 + U(wo // 2)]
                    continue
                for rx in range(sx):
                    s0 = U(((((rz * sy + ry) * sx + rx) * dq + uz) * hq + uy) * w2 + m)
                    for ux in range(U((wo - rx + sx - 1) // sx)):
                        outf[d0 + U(rx) + ux * U(sx)] = pb[s0 + ux]


def transposed_direct(x, w, out, stride, padding, dilation, groups):
    """The "layer_transposed" launcher (see kernels/__init__.py): overwrites ``out``;
    output planes split over the Python threads."""
    x = np.ascontiguousarray(x)
    w = np.ascontiguousarray(w)
    work = x.size * w.shape[1] * math.prod(w.shape[2:])
    threads = get_num_threads() if work >= 1 << 17 else 1
    run_ranges(lambda j0, j1: _transposed_planes(x, w, out, *stride, *padding, *dilation,
                                                 groups, j0, j1),
               out.shape[0] * out.shape[1], threads, CHUNKS_PER_THREAD)
    return out


# -- weight gradients (the "layer_weight" kind) ------------------------------------------

def choose_weight_method(w_shape, groups):
    """The weight-gradient method: the depthwise kernel where each output channel reads
    one input channel and the groups hold few output channels (a GEMM over so few rows
    would be all overhead), else one GEMM over every image, group and tap."""
    return "direct" if w_shape[1] == 1 and w_shape[0] // groups <= 8 else "gemm"


def _weight_gemm_images(xq, pointwise, gom, gview, ksize, stride, dilation, oh, ow,
                        threads):
    """weight_gemm for small maps (fewer than 256 output positions: 7x7, 14x14), groups
    1: the positions of a block of images (as many as the workspace holds) side by side,
    so each GEMM sums over all of them instead of one image's 49-196. A 512 x 49 x 4608
    GEMM per 7x7 image, its 9.4 MB result added into an accumulator each time, took
    32 ms at batch 8, where one 512 x 392 x 4608 GEMM takes 18 (one thread). The threads
    split the input channels, each writing its own columns of the result in place."""
    n_img, n_out, npos = gom.shape[0], gom.shape[2], gom.shape[3]
    k = gview.shape[2]
    taps = ksize[0] * ksize[1] * ksize[2]
    n_ch = k // taps
    parts = split_range(n_ch, threads, max(1, 64 // taps))
    # Images per block: as many as a thread's columns hold within WORKSPACE_BYTES / 2.
    k_part = max(c1 - c0 for c0, c1 in parts) * taps
    nb = max(1, min(n_img, WORKSPACE_BYTES // 2 // (k_part * npos * gom.itemsize)))
    for n0 in range(0, n_img, nb):
        n1 = min(n_img, n0 + nb)
        m = n1 - n0
        go_b = np.ascontiguousarray(gom[n0:n1, 0].transpose(1, 0, 2)).reshape(n_out, -1)

        def run(c, n0=n0, m=m, go_b=go_b):
            c0, c1 = c
            kk = (c1 - c0) * taps
            cols = scratch("nn.wgrad.imgs", (kk, m * npos), go_b.dtype)
            _image_columns(xq, pointwise, n0, m, c0, c1, ksize, stride, dilation, oh, ow,
                           cols)
            dst = gview[0, :, c0 * taps:c1 * taps]
            if n0 == 0:
                np.matmul(go_b, cols.T, out=dst)
            else:
                tmp = scratch("nn.wgrad.tmp", (n_out, kk), go_b.dtype)
                np.matmul(go_b, cols.T, out=tmp)
                dst += tmp

        run_chunks(run, parts, threads)


def weight_gemm(x, go, grad, stride, dilation, groups, pads=None):
    """grad[g] (O/g, Cg*taps) = sum over images and output positions of grad_output
    (O/g, P) times the layer's im2col columns (Cg*taps, P) transposed: GEMMs over chunks
    of output rows (the columns built per chunk, within GEMM_CHUNK_BYTES, as in gemm),
    batched over the groups in one matmul, each Python thread summing its chunks into
    its own accumulator; the accumulators are added at the end. A 1x1x1 layer uses the
    (subsampled) input planes as its columns."""
    n_img, n_out, od, oh, ow = go.shape
    o_g = n_out // groups
    cg, kd, kh, kw = grad.shape[1:]
    k = cg * kd * kh * kw
    n_ch = cg * groups
    rows = od * oh
    pointwise, xq = _gemm_input(x, stride, pads, (kd, kh, kw), (od, oh, ow))
    gom = np.ascontiguousarray(go).reshape(n_img, groups, o_g, rows * ow)
    threads = get_num_threads()
    if groups == 1 and n_img > 1 and rows * ow < 256:
        _weight_gemm_images(xq, pointwise, gom, grad.reshape(1, o_g, k), (kd, kh, kw),
                            stride, dilation, oh, ow, threads)
        return grad
    per_row = n_ch * (k // cg) * ow * x.itemsize
    pieces = max(-(-rows // max(1, GEMM_CHUNK_BYTES // per_row)),
                 -(-_balance_chunks(threads) // n_img))
    pieces = max(1, min(pieces, rows, rows * ow // 256))
    chunk = -(-rows // pieces)
    # Few images of few output rows (small, deep layers) give fewer chunks than the
    # threads want: then (one group) the input channels are split too, each chunk
    # computing its own columns of the result.
    n_rows = n_img * -(-rows // chunk)
    csplit = 1
    if groups == 1 and n_rows < 2 * threads:
        csplit = min(cg, -(-2 * threads // n_rows))
    cstep = -(-n_ch // csplit) if groups == 1 else n_ch
    taps = kd * kh * kw
    chunks = [(n, r0, min(rows, r0 + chunk), c0, min(n_ch, c0 + cstep))
              for n in range(n_img) for r0 in range(0, rows, chunk)
              for c0 in range(0, n_ch, cstep)]
    accs = []
    local = threading.local()
    # Few output channels against columns (O/g x Cg*taps within 1 MB): the transposed
    # product, columns x grad_output^T, which OpenBLAS runs at 97 GF/s against 78 with 64
    # output channels (one thread, K = 280-3136); the sum is transposed once at the end,
    # which for a large weight (512 x 4608) would cost more than it saves.
    flip = o_g * k <= 2**18 and o_g < k
    shape = (groups, k, o_g) if flip else (groups, o_g, k)
    # One image of one row chunk: every chunk owns its columns of the result and writes
    # them in place, with no accumulator per thread to zero and add (9.4 MB each for a
    # 512-channel 3x3 layer, more than the GEMM of a 7x7 map reads).
    gview = grad.reshape(groups, o_g, k)
    in_place = n_rows == 1

    def run(c):
        n, r0, r1, c0, c1 = c
        if in_place:
            acc = gview
        else:
            acc = getattr(local, "acc", None)
            if acc is None:
                acc = local.acc = np.zeros(shape, x.dtype)
                accs.append(acc)
        nk = (c1 - c0) * taps // groups          # result columns per group
        if pointwise:
            cols = xq[n, c0:c1, r0 * ow:r1 * ow].reshape(groups, nk, -1)
        else:
            cols = scratch("nn.wgrad.cols", ((c1 - c0) * taps, (r1 - r0) * ow), x.dtype)
            _im2col(xq, n, c0, c1 - c0, kd, kh, kw, *stride, *dilation, oh, ow, r0, r1,
                    cols)
            cols = cols.reshape(groups, nk, -1)
        go_c = gom[n, :, :, r0 * ow:r1 * ow]
        if in_place:
            np.matmul(go_c, cols.transpose(0, 2, 1),
                      out=gview[:, :, c0 * taps:c0 * taps + nk])
            return
        if flip:
            tmp = scratch("nn.wgrad.tmp", (groups, nk, o_g), x.dtype)
            np.matmul(cols, go_c.transpose(0, 2, 1), out=tmp)
            part = acc if nk == k else acc[:, c0 * taps:c0 * taps + nk]
        else:
            tmp = scratch("nn.wgrad.tmp", (groups, o_g, nk), x.dtype)
            np.matmul(go_c, cols.transpose(0, 2, 1), out=tmp)
            part = acc if nk == k else acc[:, :, c0 * taps:c0 * taps + nk]
        part += tmp

    run_chunks(run, chunks, threads)
    if in_place:
        return grad
    total = accs[0]
    for a in accs[1:]:
        total += a
    gview[...] = total.transpose(0, 2, 1) if flip else total
    return grad


def weight_direct(x, go, grad, stride, dilation, groups, pads=None):
    """The depthwise weight-gradient kernel (layers with C/groups == 1)."""
    return depthwise_weight_grad(x, go, grad, stride, dilation, pads)


# -- FFT --------------------------------------------------------------------------------

@jit(fastmath=False)
def _spectral_mac(xf, wf, yf, j0, j1):
    # yf[n, o, f] = sum_c xf[n, c, f] * conj(wf[o, c, f]): correlation in the frequency
    # domain, summed over input channels without materialising per-channel products.
    # The spectra come as float views (re, im interleaved): LLVM vectorises the
    # real arithmetic, not numba's complex type.
    # Strict IEEE arithmetic (no fastmath): with FMA contraction allowed, LLVM fused
    # different products of `xr * wr + xi * wi` in the parallel kernel, its serial twin and
    # the parallel kernel loaded from numba's cache (results 1 ulp apart); the loop is
    # bound by memory traffic, so strict arithmetic cost 0-3 % here (1 thread, median).
    # Jobs j0 <= n*O + o < j1: the launcher splits them over its Python threads, between
    # scipy.fft calls that use threads of their own (no numba region: its OpenMP
    # workers would keep spinning beside them).
    n_img, cg, nf2 = xf.shape
    n_out = wf.shape[0]
    nf = nf2 // 2
    for job in range(j0, j1):
        n = job // n_out
        o = job - n * n_out
        acc = yf[n, o]
        for f in range(nf2):
            acc[f] = 0
        for c in range(cg):
            xs = xf[n, c]
            ws = wf[o, c]
            for f in range(nf):
                xr = xs[2 * f]
                xi = xs[2 * f + 1]
                wr = ws[2 * f]
                wi = ws[2 * f + 1]
                acc[2 * f] += xr * wr + xi * wi
                acc[2 * f + 1] += xi * wr - xr * wi


def _rfft_padded(a, shape, workers):
    """rfftn of a (..., k0, k1, k2) zero-padded to ``shape`` over the last three axes,
    axis by axis: the real transform of the last axis over the rows that hold data only,
    then the complex transforms padding as they go; length-1 axes are skipped."""
    out = scipy.fft.rfft(a, n=shape[2], axis=-1, workers=workers)
    for ax in (-2, -3):
        if shape[ax] > 1:
            out = scipy.fft.fft(out, n=shape[ax], axis=ax, workers=workers,
                                overwrite_x=True)
    return out


def _irfft_rows(yf, shape, sel, workers):
    """Inverse of _rfft_padded restricted to the output rows ``sel`` wants: the complex
    axes first (in place), then only the kept rows go through the real transform of the
    last axis (scipy's irfftn would transform and copy every row)."""
    for ax in (-3, -2):
        if shape[ax] > 1:
            yf = scipy.fft.ifft(yf, axis=ax, workers=workers, overwrite_x=True)
    yf = yf[(Ellipsis, sel[0], sel[1], slice(None))]
    y = scipy.fft.irfft(yf, n=shape[2], axis=-1, workers=workers)
    return y[..., sel[2]]


def _dilate(w, dilation):
    """Insert dilation-1 zeros between the taps of w (..., KD, KH, KW)."""
    if tuple(dilation) == (1, 1, 1):
        return w
    k = w.shape[-3:]
    ext = tuple(d * (kk - 1) + 1 for d, kk in zip(dilation, k))
    wd = np.zeros(w.shape[:-3] + ext, w.dtype)
    wd[..., ::dilation[0], ::dilation[1], ::dilation[2]] = w
    return wd


def fft(x, w, out, stride, dilation, groups):
    """FFT method (see the module docstring for the contract)."""
    if out.size == 0:
        return out
    n_img, n_out, od, oh, ow = out.shape
    o_g = n_out // groups
    cg = w.shape[1]
    osz = out.shape[2:]
    wd = _dilate(w, dilation)
    kext = wd.shape[2:]
    # Only the input that some output reads; the transform length needs no extra padding
    # since a valid correlation never wraps around.
    ext = tuple((m - 1) * s + k for m, s, k in zip(osz, stride, kext))
    shape = tuple(scipy.fft.next_fast_len(e, real=True) for e in ext)
    nf = shape[0] * shape[1] * (shape[2] // 2 + 1)
    csize = np.dtype(np.complex64 if x.dtype == np.float32 else np.complex128).itemsize
    workers = threads = get_num_threads()
    sel = tuple(slice(0, (m - 1) * s + 1, s) for m, s in zip(osz, stride))
    budget = WORKSPACE_BYTES // 3
    # Filter spectra of ob output channels, image spectra of nb images, products of both.
    ob = max(1, min(o_g, budget // max(1, cg * nf * csize)))
    nb = max(1, min(n_img, budget // max(1, (cg + ob) * nf * csize)))
    xs = x[:, :, :ext[0], :ext[1], :ext[2]]
    fdim = shape[:2] + (shape[2] // 2 + 1,)
    for g in range(groups):
        for o0 in range(0, o_g, ob):
            o1 = min(o_g, o0 + ob)
            wf = _rfft_padded(wd[g * o_g + o0:g * o_g + o1], shape, workers)
            wf = wf.reshape(o1 - o0, cg, nf).view(wf.real.dtype)
            for n0 in range(0, n_img, nb):
                n1 = min(n_img, n0 + nb)
                xf = _rfft_padded(xs[n0:n1, g * cg:(g + 1) * cg], shape, workers)
                xf = xf.reshape(n1 - n0, cg, nf).view(xf.real.dtype)
                yf = np.empty((n1 - n0, o1 - o0, 2 * nf), xf.dtype)
                run_ranges(lambda j0, j1: _spectral_mac(xf, wf, yf, j0, j1),
                           (n1 - n0) * (o1 - o0), threads, CHUNKS_PER_THREAD)
                del xf
                yc = yf.view(np.complex64 if yf.dtype == np.float32 else np.complex128)
                y = _irfft_rows(yc.reshape((n1 - n0, o1 - o0) + fdim), shape, sel, workers)
                del yf, yc
                out[n0:n1, g * o_g + o0:g * o_g + o1] = y
    return out


# -- Winograd F(4x4, 3x3) ---------------------------------------------------------------
# Lavin & Gray's matrices for correlation: Y = A^T [(G g G^T) * (B^T d B)] A on 6x6 input
# tiles giving 4x4 output tiles. The transforms below are B^T and A^T written out (their
# zeros skipped) so each tile costs a few dozen adds instead of two dense 6x6 products.

_WINO_G = np.array([[1 / 4, 0, 0],
                    [-1 / 6, -1 / 6, -1 / 6],
                    [-1 / 6, 1 / 6, -1 / 6],
                    [1 / 24, 1 / 12, 1 / 6],
                    [1 / 24, -1 / 12, 1 / 6],
                    [0, 0, 1]])
_WINO_GG = np.kron(_WINO_G, _WINO_G)          # (36, 9): the 2-D filter transform


@jit()
def _wino_input(x, v, sz, z0, u0, u1, th, tw, od, buf, t1):
    # v[a*6 + b, (u - u0)*tw + tx, c] = (B^T d B)[a, b] for the 6x6 tile of
    # x[n, c, z0 + oz*sz] at rows 4*ty.., columns 4*tx..; u = (n*od + oz)*th + ty
    # indexes tile rows.
    # A whole tile row at a time, channels innermost: buf[i, p, k, c] holds input row i
    # of the tile row at column 4*k + p (columns split by phase mod 4), so that both
    # transform steps are loops over long contiguous runs of (tile, channel) values:
    # down the columns into t1 (one loop of 4*(tw+1)*C per output row), then along the
    # rows, where tile tx's column j is phase j % 4 at k = tx + j // 4, a fixed offset
    # in the flat (k, c) run (one loop of tw*C per output). Per-tile loops over the
    # channels alone were mostly loop overhead at 64 channels.
    n_ch = x.shape[1]
    wn = 4 * tw + 2
    seg = tw * n_ch
    for i in range(6):                  # the two phase columns past the input row
        for p in range(2, 4):
            for c in range(n_ch):
                buf[i, p, tw, c] = 0
    bf = buf.reshape(6, -1)
    tf = t1.reshape(6, -1)
    run = bf.shape[1]
    for u in range(u0, u1):
        b_ = u // th
        ty = u - b_ * th
        n = b_ // od
        oz = b_ - n * od
        y0 = 4 * ty
        for i in range(6):
            bi = buf[i]
            for c in range(n_ch):
                src = x[n, c, z0 + oz * sz, y0 + i]
                for col in range(wn):
                    bi[col & 3, col >> 2, c] = src[col]
        r0 = bf[0]
        r1 = bf[1]
        r2 = bf[2]
        r3 = bf[3]
        r4 = bf[4]
        r5 = bf[5]
        # One output row per loop: few enough pointers for LLVM's overlap checks, so
        # each loop vectorises (one loop writing six rows does not).
        t = tf[0]
        for e in range(run):
            t[e] = 4 * r0[e] - 5 * r2[e] + r4[e]
        t = tf[1]
        for e in range(run):
            t[e] = -4 * (r1[e] + r2[e]) + r3[e] + r4[e]
        t = tf[2]
        for e in range(run):
            t[e] = 4 * (r1[e] - r2[e]) - r3[e] + r4[e]
        t = tf[3]
        for e in range(run):
            t[e] = 2 * (r3[e] - r1[e]) - r2[e] + r4[e]
        t = tf[4]
        for e in range(run):
            t[e] = 2 * (r1[e] - r3[e]) - r2[e] + r4[e]
        t = tf[5]
        for e in range(run):
            t[e] = 4 * r1[e] - 5 * r3[e] + r5[e]
        t0 = (u - u0) * tw
        for a in range(6):
            e0 = t1[a, 0].reshape(-1)
            e1 = t1[a, 1].reshape(-1)
            e2 = t1[a, 2].reshape(-1)
            e3 = t1[a, 3].reshape(-1)
            e4 = e0[n_ch:]
            e5 = e1[n_ch:]
            d = v[6 * a, t0:t0 + tw].reshape(-1)
            for e in range(seg):
                d[e] = 4 * e0[e] - 5 * e2[e] + e4[e]
            d = v[6 * a + 1, t0:t0 + tw].reshape(-1)
            for e in range(seg):
                d[e] = -4 * (e1[e] + e2[e]) + e3[e] + e4[e]
            d = v[6 * a + 2, t0:t0 + tw].reshape(-1)
            for e in range(seg):
                d[e] = 4 * (e1[e] - e2[e]) - e3[e] + e4[e]
            d = v[6 * a + 3, t0:t0 + tw].reshape(-1)
            for e in range(seg):
                d[e] = 2 * (e3[e] - e1[e]) - e2[e] + e4[e]
            d = v[6 * a + 4, t0:t0 + tw].reshape(-1)
            for e in range(seg):
                d[e] = 2 * (e1[e] - e3[e]) - e2[e] + e4[e]
            d = v[6 * a + 5, t0:t0 + tw].reshape(-1)
            for e in range(seg):
                d[e] = 4 * e1[e] - 5 * e3[e] + e5[e]


@jit()
def _wino_output(m, out, u0, u1, th, tw, od, q, r):
    # out tile (4x4) = A^T M A for every output channel, m (36, T, O) channels-last, a
    # whole tile row at a time as in _wino_input: q[a, j, tx, o] = (M A)[a, j] and
    # r[i, j, tx, o] = (A^T M A)[i, j], each a loop over the flat (tile, channel) run;
    # then each output row is copied out to the (N, O, D, H, W) layout, clipped.
    n_out = out.shape[1]
    oh = out.shape[3]
    ow = out.shape[4]
    seg = tw * n_out
    for u in range(u0, u1):
        b_ = u // th
        ty = u - b_ * th
        n = b_ // od
        oz = b_ - n * od
        t0 = (u - u0) * tw
        for a in range(6):
            m0 = m[6 * a, t0:t0 + tw].reshape(-1)
            m1 = m[6 * a + 1, t0:t0 + tw].reshape(-1)
            m2 = m[6 * a + 2, t0:t0 + tw].reshape(-1)
            m3 = m[6 * a + 3, t0:t0 + tw].reshape(-1)
            m4 = m[6 * a + 4, t0:t0 + tw].reshape(-1)
            m5 = m[6 * a + 5, t0:t0 + tw].reshape(-1)
            d = q[a, 0].reshape(-1)
            for e in range(seg):
                d[e] = m0[e] + m1[e] + m2[e] + m3[e] + m4[e]
            d = q[a, 1].reshape(-1)
            for e in range(seg):
                d[e] = m1[e] - m2[e] + 2 * (m3[e] - m4[e])
            d = q[a, 2].reshape(-1)
            for e in range(seg):
                d[e] = m1[e] + m2[e] + 4 * (m3[e] + m4[e])
            d = q[a, 3].reshape(-1)
            for e in range(seg):
                d[e] = m1[e] - m2[e] + 8 * (m3[e] - m4[e]) + m5[e]
        for j in range(4):
            e0 = q[0, j].reshape(-1)
            e1 = q[1, j].reshape(-1)
            e2 = q[2, j].reshape(-1)
            e3 = q[3, j].reshape(-1)
            e4 = q[4, j].reshape(-1)
            e5 = q[5, j].reshape(-1)
            d = r[0, j].reshape(-1)
            for e in range(seg):
                d[e] = e0[e] + e1[e] + e2[e] + e3[e] + e4[e]
            d = r[1, j].reshape(-1)
            for e in range(seg):
                d[e] = e1[e] - e2[e] + 2 * (e3[e] - e4[e])
            d = r[2, j].reshape(-1)
            for e in range(seg):
                d[e] = e1[e] + e2[e] + 4 * (e3[e] + e4[e])
            d = r[3, j].reshape(-1)
            for e in range(seg):
                d[e] = e1[e] - e2[e] + 8 * (e3[e] - e4[e]) + e5[e]
        y0 = 4 * ty
        for i in range(4):
            if y0 + i >= oh:
                break
            for o in range(n_out):
                dst = out[n, o, oz, y0 + i]
                for col in range(ow):
                    dst[col] = r[i, col & 3, col >> 2, o]


def _wino_cost(x_shape, w_shape, osz, groups, itemsize):
    """Model seconds of Winograd F(4x4, 3x3): the 36 products as GEMMs as tall as the
    tiles (BLAS is slow below ~64 rows: a 7x7 map has 4 tiles), the tile transforms, and
    the filter transform, which writes 36 values per filter tap triple at ~5.6 GB/s
    (0.42 ms for 128 x 128 channels, 6.6 ms for 512 x 512: a small map of many channels
    pays it for a few tiles); each depth tap one such layer, added on."""
    n_img, n_ch = x_shape[:2]
    n_out, cg = w_shape[:2]
    o_g = n_out // groups
    kd = w_shape[2]
    tiles = n_img * osz[0] * -(-osz[1] // 4) * -(-osz[2] // 4)
    wmacs = 36 * tiles * n_out * cg
    return (kd * (2 * wmacs / (50e9 * min(1.0, cg / 32) * min(1.0, o_g / 32)
                               * min(1.0, tiles / 64))
                  + 36 * tiles * (n_ch + n_out) * itemsize * 2 / 4e9
                  + 36 * n_out * cg * itemsize / 5.6e9)
            + (kd - 1) * 3 * n_img * n_out * math.prod(osz) * itemsize / 10e9)


def winograd(x, w, out, stride, dilation, groups, pads=None):
    """Winograd F(4x4, 3x3) method (see the module docstring); needs ``applicable``."""
    if out.size == 0:
        return out
    threads = get_num_threads()
    if w.shape[2] == 1:
        return _winograd_4x4(_winograd_input(x, out, pads), w, out, stride[0], 0, groups,
                             threads)
    # More than one tap in depth (a 3x3x3 video layer): the sum over the depth taps a of
    # the 2-D layer of tap a on the planes a*dz + oz*sz, each a Winograd layer of its
    # own, added into the output (one thread, C64 16x56x56 batch 1: 77 ms against the
    # direct kernel's 128 and torch's 100). In blocks of images whose padded input and
    # second output buffer stay within WORKSPACE_BYTES: whole, they came to 2.3x the
    # output at batch 8 (234 MiB).
    n_img = out.shape[0]
    per_img = out[0].nbytes + x[0].nbytes * 2
    nb = max(1, min(n_img, WORKSPACE_BYTES // per_img))
    for n0 in range(0, n_img, nb):
        n1 = min(n_img, n0 + nb)
        xq, ob = _winograd_input(x[n0:n1], out[n0:n1], pads), out[n0:n1]
        tmp = scratch("nn.wino.depth", ob.shape, out.dtype)
        flat_out, flat_tmp = ob.reshape(-1), tmp.reshape(-1)
        for a in range(w.shape[2]):
            _winograd_4x4(xq, w[:, :, a:a + 1], ob if a == 0 else tmp, stride[0],
                          a * dilation[0], groups, threads)
            if a:
                run_ranges(lambda i0, i1: np.add(flat_out[i0:i1], flat_tmp[i0:i1],
                                                 out=flat_out[i0:i1]),
                           flat_out.size, threads, 2)
    return out


def _winograd_input(x, out, pads):
    """x padded for F(4x4) tiles over out's (H, W): the layer's padding and the zeros the
    ragged last tiles read past the input (their outputs are clipped), in the one copy
    _polyphase makes (none when there is nothing to add); its numpy path: the rest runs
    on Python threads. Returns (N, C, D, H, W)."""
    oh, ow = out.shape[3], out.shape[4]
    need_h, need_w = 4 * -(-oh // 4) + 2, 4 * -(-ow // 4) + 2
    (lz, hz), (ly, _), (lx, _) = pads if pads is not None else ((0, 0),) * 3
    full = ((lz, hz), (ly, need_h - x.shape[3] - ly), (lx, need_w - x.shape[4] - lx))
    xq = _polyphase(x, (1, 1, 1), full, threaded=False)
    return xq.reshape(xq.shape[:2] + xq.shape[5:])


def _winograd_4x4(x, w, out, sz, z0, groups, threads):
    """F(4x4, 3x3) of the padded input x (N, C, D, H, W) with a (O, Cg, 1, 3, 3) kernel
    into out: output plane oz from input plane z0 + oz*sz."""
    n_img, n_out, od, oh, ow = out.shape
    n_ch = x.shape[1]
    o_g = n_out // groups
    cg = w.shape[1]
    th, tw = -(-oh // 4), -(-ow // 4)
    # Filter transform: u[r, g, c, o] = (G w[g*Og + o, c] G^T)[a, b] with r = a*6 + b:
    # a (36 x 9) @ (9 x O*Cg) GEMM reading w in place (as a transposed operand), its
    # result used transposed by the tile GEMMs below (BLAS takes either order), in the
    # input's precision, split in column blocks over our threads with one-thread BLAS
    # (BLAS's own threads keep spinning after a call and slow the kernels that follow
    # 2x). A transposed copy of w and a one-thread GEMM cost 2.8 ms of a 12 ms layer
    # with 256 channels.
    w9 = w.reshape(-1, 9)
    gg = _WINO_GG.astype(x.dtype)
    u_oc = np.empty((36, w9.shape[0]), x.dtype)
    run_chunks(lambda c: np.matmul(gg, w9[c[0]:c[1]].T, out=u_oc[:, c[0]:c[1]]),
               split_range(w9.shape[0], threads, 8192), threads)
    u = u_oc.reshape(36, groups, o_g, cg).transpose(0, 1, 3, 2)
    # The 36 products: our register-tiled GEMM where a product's filter matrix (Cg x Og)
    # fits in L1 (1.35-1.6x one-thread BLAS there: no per-call overhead, no packing;
    # see _tilegen.GEMM_TILES), else BLAS, whose packing wins from 128 x 128 on.
    bgemm, gm, gn = _BATCHED_GEMM[x.dtype]
    own_gemm = groups == 1 and n_out >= gn and cg * o_g * x.itemsize <= 16 * 1024
    if own_gemm:
        u_co = np.ascontiguousarray(u.reshape(36, cg, o_g))
    total = n_img * od * th                      # tile rows
    # Tile rows per chunk: transformed tiles within WINO_CHUNK_BYTES, CHUNKS_PER_THREAD
    # chunks per thread when each GEMM stays at least ~64 tiles tall (BLAS on 32 x 256
    # blocks ran at half speed: 1.2-1.7x on N8 C256 14x14 from 64).
    per_u = 36 * (n_ch + n_out) * tw * x.itemsize
    pieces = max(-(-total // max(1, WINO_CHUNK_BYTES // per_u)),
                 min(_balance_chunks(threads), total * tw // 64))
    pieces = max(1, min(pieces, total))
    chunk = -(-total // pieces)
    # One chunk (a small image): its 36 products are split over the threads instead,
    # the transforms staying on one (C128 28x28, batch 1: 1.8 ms on one thread, of
    # which 0.9 the products).
    inner = threads if pieces == 1 else 1

    def products(v, m, r0, r1, nt):
        # 36 GEMMs per group: (T x Cg) @ (Cg x Og), written channels-last.
        if own_gemm and nt >= gm:
            bgemm(v[r0:r1], u_co[r0:r1], m[r0:r1])
        else:
            np.matmul(v[r0:r1].reshape(r1 - r0, nt, groups, cg).transpose(0, 2, 1, 3),
                      u[r0:r1],
                      out=m[r0:r1].reshape(r1 - r0, nt, groups, o_g).transpose(0, 2, 1, 3))

    def run(u0):
        u1 = min(total, u0 + chunk)
        nt = (u1 - u0) * tw
        vv = scratch("nn.wino.v", (36, nt, n_ch), x.dtype)
        mm = scratch("nn.wino.m", (36, nt, n_out), x.dtype)
        buf = scratch("nn.wino.buf", (6, 4, tw + 1, n_ch), x.dtype)
        t1 = scratch("nn.wino.t1", (6, 4, tw + 1, n_ch), x.dtype)
        q = scratch("nn.wino.q", (6, 4, tw, n_out), x.dtype)
        r = scratch("nn.wino.r", (4, 4, tw, n_out), x.dtype)
        _wino_input(x, vv, sz, z0, u0, u1, th, tw, od, buf, t1)
        if inner > 1:
            run_chunks(lambda c: products(vv, mm, c[0], c[1], nt), split_range(36, inner, 1),
                       inner)
        else:
            products(vv, mm, 0, 36, nt)
        _wino_output(mm, out, u0, u1, th, tw, od, q, r)

    run_chunks(run, range(0, total, chunk), threads)
    return out


# -- method table, applicability and the default choice ---------------------------------

METHODS = {"direct": direct, "gemm": gemm, "fft": fft, "winograd": winograd}
PAD_AWARE = ("direct", "gemm", "winograd")


def _winograd_ok(x_shape, w_shape, stride, dilation, groups):
    """3x3 in (H, W), stride and dilation 1 there; any depth taps, stride, dilation."""
    return (tuple(w_shape[3:]) == (3, 3) and tuple(stride[1:]) == (1, 1)
            and tuple(dilation[1:]) == (1, 1))


APPLICABLE = {
    "direct": lambda *a: True,
    "gemm": lambda *a: True,
    "fft": lambda *a: True,
    "winograd": _winograd_ok,
}


def applicable(method, x_shape, w_shape, stride, dilation, groups):
    """Whether ``method`` can run this layer (canonical 3-D shapes, 3-tuples)."""
    return APPLICABLE[method](x_shape, w_shape, stride, dilation, groups)


def _costs(x_shape, w_shape, stride, dilation, groups, itemsize):
    """Rough seconds per method for one thread of a 2-core AVX2 machine, calibrated on
    the benchmark layers (fastconv/bench/cases_nn.py, one thread against torch): flops
    over each method's sustained rate plus the bytes it moves. Only the ranking matters;
    the tuner replaces this with measurements."""
    n_img, n_ch = x_shape[:2]
    n_out, cg = w_shape[:2]
    k = w_shape[2:]
    o_g = n_out // groups
    osz = [(xi - d * (ki - 1) - 1) // s + 1
           for xi, ki, s, d in zip(x_shape[2:], k, stride, dilation)]
    p = math.prod(osz)
    taps = math.prod(k)
    macs = n_img * n_out * p * cg * taps
    # Direct, row kernel: ~30 GF/s on wide rows with 4+ output channels per group, less on
    # narrow rows (loop overhead per row) and for kernel rows that leave tap groups
    # part-empty.
    # Register-tiled: ~55 GF/s float32 (half for float64), less the outputs its
    # overlapping last tiles recompute.
    # Taps used of the row kernel's groups of four (one group per input phase at least:
    # a 1x1 layer uses a quarter of its FMAs, strided or not).
    kw = k[2]
    per_phase = {}
    for e in range(kw):
        ph = (e * dilation[2]) % stride[2]
        per_phase[ph] = per_phase.get(ph, 0) + 1
    tap_use = kw / (4 * sum(-(-v // 4) for v in per_phase.values()))
    eff_direct = 30e9 * min(1.0, osz[2] / 32) * tap_use * (0.6 if o_g < 4 else 1.0)
    dtype = np.float32 if itemsize == 4 else np.float64
    tiled = _tiled_ok((n_img, n_out) + tuple(osz), w_shape, groups, dtype)
    if tiled:
        p, q = _TILE[np.dtype(dtype)]
        eff_direct = ((55e9 if itemsize == 4 else 28e9) * osz[2] / (p * -(-osz[2] // p))
                      * o_g / (q * -(-o_g // q)))
        if taps == 1:        # one tap per channel: the tile's loop overhead shows (1x1
            eff_direct *= 0.7  # layers ran 1.4x BLAS's time at 256 -> 64 channels)
        if stride[2] > 1:    # a strided row reads its taps from several phase planes:
            eff_direct *= 0.6  # wav2vec's k3 / k2 stride-2 512-channel layers ran at
            #                    1.2-1.6x BLAS's time, one thread (modelled 0.8-1.1x)
    costs = {"direct": 2 * macs / eff_direct}
    if cg == 1 and not tiled:
        # The depthwise kernel (_nn_depthwise): memory-bound passes over a flat run of
        # OH x WQ values per group of up to 4 taps of one phase block, ~5e9 values a
        # second, after a copy of each padded input plane (~4e9 values a second).
        wq = -(-(x_shape[4]) // stride[2])
        hq = -(-(x_shape[3]) // stride[1])
        dq = -(-(x_shape[2]) // stride[0])
        blocks = {}
        for a in range(k[0]):
            for b in range(k[1]):
                for e in range(k[2]):
                    key = tuple((t * d) % s for t, d, s in zip((a, b, e), dilation, stride))
                    blocks[key] = blocks.get(key, 0) + 1
        passes = sum(-(-v // 4) for v in blocks.values())
        costs["direct"] = (n_img * n_out * osz[0] * osz[1] * wq * passes / 5e9
                           + n_img * n_ch * math.prod(stride) * dq * hq * wq / 4e9)
    # GEMM: BLAS sustains ~45 GF/s (one thread) when both the reduction (Cg*taps) and
    # the output channels per group are wide; im2col writes the columns once (none for
    # 1x1).
    kk = cg * taps
    eff = 45e9 * min(1.0, kk / 64) * min(1.0, o_g / 32)
    # A 1x1 layer reads the input planes as they are, or (strided) a gathered copy of
    # the values it reads.
    if taps == 1:
        move = 0 if tuple(stride) == (1, 1, 1) else n_img * n_ch * p * itemsize / 5e9
    else:
        move = n_img * groups * kk * p * itemsize / 10e9
    costs["gemm"] = 2 * macs / eff + move
    # FFT: pocketfft ~7.5 GF/s on the plane transforms (zero-padded filters cost about
    # 60 % of a full plane), the spectral multiply-accumulate ~4 GF/s.
    ext = [(m - 1) * s + d * (ki - 1) + 1 for m, s, d, ki in zip(osz, stride, dilation, k)]
    size = math.prod(ext)
    planes = n_img * n_ch + 0.6 * n_out * cg + n_img * n_out
    costs["fft"] = (planes * 2.5 * size * max(1.0, math.log2(size)) / 7.5e9
                    + 8 * n_img * n_out * cg * size / 2 / 4e9)
    if _winograd_ok(x_shape, w_shape, stride, dilation, groups):
        costs["winograd"] = _wino_cost(x_shape, w_shape, osz, groups, itemsize)
    return costs


def layer_key(x_shape, w_shape, stride, dilation, groups, dtype):
    """What a tuner should key a measurement on: the canonical (padded) shapes, stride,
    dilation, groups and dtype (the thread count is the tuner's to add)."""
    return (tuple(int(v) for v in x_shape), tuple(int(v) for v in w_shape),
            tuple(int(v) for v in stride), tuple(int(v) for v in dilation), int(groups),
            np.dtype(dtype).name)


def layer_costs(x_shape, w_shape, stride, dilation, groups, dtype=np.float32):
    """Model seconds of every method applicable to this layer (the tuner's prior)."""
    return _costs(tuple(x_shape), tuple(w_shape), tuple(stride), tuple(dilation), groups,
                  np.dtype(dtype).itemsize)


def choose_method(x_shape, w_shape, stride, dilation, groups, dtype=np.float32,
                  finite=True):
    """The method ``method="auto"`` runs until the tuner is wired: the cheapest by the
    cost model in ``_costs``. With ``finite=False`` (the input holds NaN or Inf) only
    methods whose outputs see just their own window are allowed (direct, gemm): FFT
    would spread a NaN over the whole plane and Winograd over a 4x4 tile."""
    costs = _costs(tuple(x_shape), tuple(w_shape), tuple(stride), tuple(dilation), groups,
                   np.dtype(dtype).itemsize)
    if not finite:
        costs = {k: v for k, v in costs.items() if k in ("direct", "gemm")}
    return min(costs, key=costs.get)


# -- launchers (the registry's "layer" kind) ------------------------------------------------
# launcher(x, w, out, stride, dilation, groups, pads): direct, gemm and Winograd fold the
# zero padding into the one copy they make anyway; FFT gets a padded copy.

def _zero_padded(x, pads):
    """x (N, C, D, H, W) zero-padded by ``pads`` ((lo, hi) >= 0 per spatial axis)."""
    return np.pad(x, ((0, 0), (0, 0)) + tuple(tuple(p) for p in pads))


def layer_direct(x, w, out, stride, dilation, groups, pads=None):
    return direct(x, w, out, stride, dilation, groups, pads=pads)


def layer_gemm(x, w, out, stride, dilation, groups, pads=None):
    return gemm(x, w, out, stride, dilation, groups, pads=pads)


def layer_winograd(x, w, out, stride, dilation, groups, pads=None):
    return winograd(x, w, out, stride, dilation, groups, pads=pads)


def layer_fft(x, w, out, stride, dilation, groups, pads=None):
    if pads is not None:
        x = _zero_padded(x, pads)
    return fft(x, w, out, stride, dilation, groups)
