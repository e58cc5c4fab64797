"""Depthwise conv-layer kernels: layers whose output channels each read one input channel
(C/groups == 1: MobileNet's and ConvNeXt's depthwise layers, with channel multiplier
m = O/groups >= 1), forward and weight gradient.

Such a layer has only kd*kh*kw multiply-adds per output, so it is bound by how its
loops touch memory, not by FMAs. One job is one (image, input channel) plane:

* the plane is copied, zero-padded and split into its stride phases, into a buffer of
  the job's own (``buf``, a few tens of KiB: it stays in L2 while the job reads it
  kd*kh*kw times). Phase (pz, py, px) holds padded element (i*sz + pz, j*sy + py,
  k*sx + px) at (i, j, k) of a (dq, hq, wq) block, so every tap reads its phase with
  unit stride;
* output slice oz is accumulated in a flat row ``acc`` of oh*wq values laid out with the
  phase width wq: acc[oy*wq + ox] for ox < ow, the wq - ow columns past the output row
  being scratch that is never stored. Tap (a, b, e) then reads its phase block at one
  flat offset, ((a*dz)//sz * hq + (b*dy)//sy) * wq + (e*dx)//sx, for the whole slice:
  one unit-stride loop of oh*wq iterations per group of taps (instead of oh short loops
  of ow), which LLVM vectorises.

Taps come in groups of up to eight that read the same phase block, summed in one pass
(up to eight FMAs per load/store of ``acc``); a group has exactly its taps (no zero-weight
padding), so an Inf in the input stays Inf as in torch. The scratch columns of ``acc``
read elements of the next row (or the slack at the end of ``buf``): finite or not, they
are never stored.
"""
from __future__ import annotations

import functools

import numpy as np
from numba import prange

from ..._jit import jit

__all__ = ["tap_groups", "forward", "weight_grad"]


# Taps per group (one pass over the accumulator row): a full group of eight is summed in
# one pass (eight FMAs per load and store of acc), smaller rests in passes of up to four.
# 7x7, C96 56^2, one thread: 13 passes -> 7, the accumulation 0.64 -> 0.60 ms only: each
# FMA still needs its own unaligned 64-byte load (torch/oneDNN reuses loaded vectors
# across outputs), which bounds this loop, not the acc traffic.
GROUP = 8


@functools.lru_cache(maxsize=256)
def tap_groups(k, stride, dilation, q):
    """Tap groups of a (kd, kh, kw) kernel: (taps (G, GROUP) flat tap index, -1 past the
    group's count; cnt (G,); phase (G,) phase block index; off (G, GROUP) flat offsets in
    the phase block of shape q = (dq, hq, wq)). Memoised per layer shape (building them
    took 0.3 ms, as long as a whole small layer); callers only read the arrays."""
    kd, kh, kw = k
    by = {}
    for a in range(kd):
        for b in range(kh):
            for e in range(kw):
                ph = tuple((t * d) % s for t, d, s in zip((a, b, e), dilation, stride))
                sh = tuple((t * d) // s for t, d, s in zip((a, b, e), dilation, stride))
                pidx = (ph[0] * stride[1] + ph[1]) * stride[2] + ph[2]
                off = (sh[0] * q[1] + sh[1]) * q[2] + sh[2]
                by.setdefault(pidx, []).append(((a * kh + b) * kw + e, off))
    groups = []
    for pidx in sorted(by):
        lst = by[pidx]
        for i in range(0, len(lst), GROUP):
            groups.append((pidx, lst[i:i + GROUP]))
    g = len(groups)
    taps = np.full((g, GROUP), -1, np.int64)
    off = np.zeros((g, GROUP), np.int64)
    cnt = np.empty(g, np.int64)
    phase = np.empty(g, np.int64)
    for i, (pidx, lst) in enumerate(groups):
        phase[i] = pidx
        cnt[i] = len(lst)
        for j, (t, o) in enumerate(lst):
            taps[i, j] = t
            off[i, j] = o
    return taps, cnt, phase, off


@jit()
def _fill(x, n, c, buf, sz, sy, sx, lz, ly, lx, dq, hq, wq):
    # buf[((pz*sy + py)*sx + px) * dq*hq*wq + (i*hq + j)*wq + k] = padded x[n, c] at
    # (i*sz + pz, j*sy + py, k*sx + px), zero outside the input; the slack past the last
    # block is zeroed too.
    d, h, w = x.shape[2], x.shape[3], x.shape[4]
    blk = dq * hq * wq
    for pz in range(sz):
        for py in range(sy):
            for i in range(dq):
                iz = i * sz + pz - lz
                for j in range(hq):
                    iy = j * sy + py - ly
                    r0 = (i * hq + j) * wq
                    inside = 0 <= iz < d and 0 <= iy < h
                    if sx == 2 and inside:
                        _fill_row2(buf, x[n, c, iz, iy], ((pz * sy + py) * 2) * blk + r0,
                                   blk, lx, wq)
                        continue
                    for px in range(sx):
                        row = buf[((pz * sy + py) * sx + px) * blk + r0:][:wq]
                        if not inside:
                            for k in range(wq):
                                row[k] = 0
                            continue
                        k0 = min(wq, max(0, (lx - px + sx - 1) // sx))
                        k1 = min(wq, max(k0, (w + lx - px + sx - 1) // sx))
                        for k in range(k0):
                            row[k] = 0
                        for k in range(k1, wq):
                            row[k] = 0
                        src = x[n, c, iz, iy]
                        mid = row[k0:k1]
                        s0 = k0 * sx + px - lx
                        if sx == 1:
                            sv = src[s0:s0 + k1 - k0]
                            for k in range(k1 - k0):
                                mid[k] = sv[k]
                        else:
                            for k in range(k1 - k0):
                                mid[k] = src[s0 + k * sx]
    for k in range(sz * sy * sx * blk, buf.shape[0]):
        buf[k] = 0


@jit()
def _fill_row2(buf, src, a0, blk, lx, wq):
    # Column phases 0 and 1 of one padded input row (stride 2 along the row): element k
    # of phase p (at buf[a0 + p*blk + k]) is src[2k + p - lx], zero outside the row.
    # Where both phases are inside, one loop reads the row once, both elements of a
    # pair (a stride-2 load alone does not vectorise: 0.39 against 0.06 ns an element).
    w = src.shape[0]
    ra = buf[a0:a0 + wq]
    rb = buf[a0 + blk:a0 + blk + wq]
    ka0 = min(wq, (lx + 1) // 2)
    ka1 = min(wq, max(ka0, (w + lx + 1) // 2))
    kb0 = min(wq, lx // 2)
    kb1 = min(wq, max(kb0, (w + lx) // 2))
    K0 = max(ka0, kb0)
    K1 = max(K0, min(ka1, kb1))
    for k in range(K0):
        ra[k] = src[2 * k - lx] if ka0 <= k < ka1 else 0
        rb[k] = src[2 * k + 1 - lx] if kb0 <= k < kb1 else 0
    for k in range(K1, wq):
        ra[k] = src[2 * k - lx] if ka0 <= k < ka1 else 0
        rb[k] = src[2 * k + 1 - lx] if kb0 <= k < kb1 else 0
    sv = src[2 * K0 - lx:]
    ma = ra[K0:K1]
    mb = rb[K0:K1]
    for k in range(K1 - K0):
        ma[k] = sv[2 * k]
        mb[k] = sv[2 * k + 1]


@jit(parallel=True)
def forward(x, wt, cnt, phase, off, out, sz, sy, sx, lz, ly, lx, dq, hq, wq):
    """out (N, O, OD, OH, OW) of the depthwise layer on unpadded x (N, C, D, H, W) with
    pads lo = (lz, ly, lx); wt (O, G, GROUP) the weights of the tap groups (cnt, phase, off
    from tap_groups), O = C*m."""
    n_img, n_ch = x.shape[0], x.shape[1]
    n_out, od, oh, ow = out.shape[1], out.shape[2], out.shape[3], out.shape[4]
    m = n_out // n_ch
    blk = dq * hq * wq
    size = sz * sy * sx * blk + wq
    run = oh * wq
    ng = cnt.shape[0]
    for job in prange(n_img * n_ch):
        n = job // n_ch
        c = job - n * n_ch
        buf = np.empty(size, x.dtype)
        acc = np.empty(run, x.dtype)
        _fill(x, n, c, buf, sz, sy, sx, lz, ly, lx, dq, hq, wq)
        for j in range(m):
            o = c * m + j
            for oz in range(od):
                for i in range(run):
                    acc[i] = 0
                for q in range(ng):
                    src = buf[phase[q] * blk + oz * hq * wq:]
                    k = cnt[q]
                    # Views at each tap's offset: indexed by the loop counter alone, so
                    # numba drops its negative-index check and LLVM vectorises.
                    if k == 8:
                        s0 = src[off[q, 0]:]
                        s1 = src[off[q, 1]:]
                        s2 = src[off[q, 2]:]
                        s3 = src[off[q, 3]:]
                        s4 = src[off[q, 4]:]
                        s5 = src[off[q, 5]:]
                        s6 = src[off[q, 6]:]
                        s7 = src[off[q, 7]:]
                        w0, w1, w2, w3 = wt[o, q, 0], wt[o, q, 1], wt[o, q, 2], wt[o, q, 3]
                        w4, w5, w6, w7 = wt[o, q, 4], wt[o, q, 5], wt[o, q, 6], wt[o, q, 7]
                        for i in range(run):
                            acc[i] += (w0 * s0[i] + w1 * s1[i] + w2 * s2[i] + w3 * s3[i]
                                       + w4 * s4[i] + w5 * s5[i] + w6 * s6[i]
                                       + w7 * s7[i])
                        continue
                    j = 0
                    while j < k:
                        s0 = src[off[q, j]:]
                        w0 = wt[o, q, j]
                        if k - j == 1:
                            for i in range(run):
                                acc[i] += w0 * s0[i]
                            break
                        s1 = src[off[q, j + 1]:]
                        w1 = wt[o, q, j + 1]
                        if k - j == 2:
                            for i in range(run):
                                acc[i] += w0 * s0[i] + w1 * s1[i]
                            break
                        s2 = src[off[q, j + 2]:]
                        w2 = wt[o, q, j + 2]
                        if k - j == 3:
                            for i in range(run):
                                acc[i] += w0 * s0[i] + w1 * s1[i] + w2 * s2[i]
                            break
                        s3 = src[off[q, j + 3]:]
                        w3 = wt[o, q, j + 3]
                        for i in range(run):
                            acc[i] += w0 * s0[i] + w1 * s1[i] + w2 * s2[i] + w3 * s3[i]
                        j += 4
                for oy in range(oh):
                    dst = out[n, o, oz, oy]
                    a = acc[oy * wq:oy * wq + ow]
                    for i in range(ow):
                        dst[i] = a[i]


@jit(parallel=True)
def weight_grad(x, go, taps, cnt, phase, off, grad, sz, sy, sx, lz, ly, lx, dq, hq, wq):
    """grad (O, T) of the depthwise layer, T = kd*kh*kw flat taps:
    grad[o, t] = sum_{n, out} go[n, o, out] * padded x[n, o // m, out*stride + t*dilation].
    One job per output channel; per image its input plane goes through _fill, and each
    tap sums the products of each gradient row with the phase block's row at the tap's
    offset (rows of ow, not the flat runs of forward: a scratch column would multiply
    an input value outside the tap's window, Inf * 0 = NaN) into a row of column sums,
    reduced once per tap. The same order in both compiles (serial twin: same bits)."""
    n_img, n_ch = x.shape[0], x.shape[1]
    n_out, od, oh, ow = go.shape[1], go.shape[2], go.shape[3], go.shape[4]
    m = n_out // n_ch
    blk = dq * hq * wq
    size = sz * sy * sx * blk + wq
    ng = cnt.shape[0]
    for o in prange(n_out):
        c = o // m
        buf = np.empty(size, x.dtype)
        tot = np.zeros(grad.shape[1], x.dtype)
        part = np.empty(ow, x.dtype)
        for n in range(n_img):
            _fill(x, n, c, buf, sz, sy, sx, lz, ly, lx, dq, hq, wq)
            for oz in range(od):
                for q in range(ng):
                    base = phase[q] * blk + oz * hq * wq
                    for j in range(cnt[q]):
                        b0 = base + off[q, j]
                        # Column sums over the rows first (element-wise, vectorised), one
                        # reduction per tap at the end: a reduction per row of a 56-wide
                        # layer cost more than its multiply-adds.
                        for i in range(ow):
                            part[i] = 0
                        for oy in range(oh):
                            g = go[n, o, oz, oy]
                            s = buf[b0 + oy * wq:b0 + oy * wq + ow]
                            for i in range(ow):
                                part[i] += g[i] * s[i]
                        acc = part[0]
                        for i in range(1, ow):
                            acc += part[i]
                        tot[taps[q, j]] += acc
        for t in range(grad.shape[1]):
            grad[o, t] = tot[t]


def plan(x_shape, w_shape, stride, dilation, pads):
    """(dq, hq, wq, lo pads, tap groups) of a depthwise layer on x of ``x_shape``
    (unpadded when ``pads`` is given)."""
    pads = tuple(tuple(p) for p in pads) if pads is not None else ((0, 0),) * 3
    dims = [d + lo + hi for d, (lo, hi) in zip(x_shape[2:], pads)]
    q = tuple(-(-d // s) for d, s in zip(dims, stride))
    groups = tap_groups(tuple(w_shape[2:]), tuple(stride), tuple(dilation), q)
    return q, tuple(lo for lo, _ in pads), groups
