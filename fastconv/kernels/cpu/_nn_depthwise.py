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

Taps come in groups of up to nine that read the same phase block (a whole 3x3 kernel is
one group), summed in one pass (up to nine FMAs per load/store of ``acc``; the first pass
of a slice stores, so ``acc`` is never zeroed); a group has exactly its taps (no
zero-weight padding), so an Inf in the input stays Inf as in torch. The scratch columns
of ``acc`` read elements of the next row (or the slack at the end of ``buf``): finite or
not, they are never stored.

The weight gradient lays each grad_output plane out like ``acc`` (scratch columns zero)
and makes each tap one dot product over the flat run; see weight_grad for how a plane
with an Inf keeps torch's result.
"""
from __future__ import annotations

import functools

import numpy as np
from numba import prange
from numba import uint64 as U

from ..._jit import jit

__all__ = ["tap_groups", "forward", "weight_grad"]


# Taps per group (one pass over the accumulator row): a group of nine (3x3) or eight is
# summed in one pass, smaller rests in passes of up to four. 7x7, C96 56^2, one thread:
# 13 passes -> 7 (groups of 8), the accumulation 0.64 -> 0.60 ms only: each FMA still
# needs its own unaligned 64-byte load (torch/oneDNN reuses loaded vectors across
# outputs), which bounds this loop, not the acc traffic. Nine (with the first pass
# storing): dw3x3 C144 56^2 0.32 -> 0.30 ms (N1), 3.8 -> 3.4 ms (N8).
GROUP = 9


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


# Per-row code indexes flat arrays with unsigned indices. A view per row (x[n, c, iz, iy],
# buf[r0:r0 + wq], ...) costs numba a reference-count increment and decrement each, and a
# signed index a negative-index select that stops LLVM from seeing a unit-stride access:
# with views, copying one 56-wide row cost ~40 cycles, 1 us a C144 56^2 plane (0.14 of a
# 0.36 ms layer, where reading the whole input takes 0.02 ms); flat and unsigned, 0.35 us.


@jit()
def _fill(xf, xb, d, h, w, buf, sz, sy, sx, lz, ly, lx, dq, hq, wq):
    # buf[((pz*sy + py)*sx + px) * dq*hq*wq + (i*hq + j)*wq + k] = padded plane at
    # (i*sz + pz, j*sy + py, k*sx + px), zero outside the input; the plane is the
    # (d, h, w) block of the flat input xf that starts at xb. The slack past the last
    # block is zeroed too. What depends on the column phase alone (the range of k inside
    # the input) is computed once per plane.
    blk = dq * hq * wq
    # Stride 1: k in [a0, a1) reads column k - lx.
    a0 = min(wq, lx)
    a1 = min(wq, max(a0, w + lx))
    # Stride 2: phase 0 (1) holds column 2k - lx (2k + 1 - lx), inside for k in [ka0, ka1)
    # ([kb0, kb1)); [K0, K1) is where both are, copied by one loop over the pairs (a
    # stride-2 load alone does not vectorise: 0.39 against 0.06 ns an element).
    ka0 = min(wq, (lx + 1) // 2)
    ka1 = min(wq, max(ka0, (w + lx + 1) // 2))
    kb0 = min(wq, lx // 2)
    kb1 = min(wq, max(kb0, (w + lx) // 2))
    K0 = max(ka0, kb0)
    K1 = max(K0, min(ka1, kb1))
    for pz in range(sz):
        for py in range(sy):
            for i in range(dq):
                iz = i * sz + pz - lz
                for j in range(hq):
                    iy = j * sy + py - ly
                    r0 = ((pz * sy + py) * sx) * blk + (i * hq + j) * wq
                    if not (0 <= iz < d and 0 <= iy < h):
                        for px in range(sx):
                            for k in range(wq):
                                buf[U(r0 + px * blk + k)] = 0
                        continue
                    s0 = xb + (iz * h + iy) * w - lx      # column c at s0 + c + lx
                    if sx == 1:
                        for k in range(a0):
                            buf[U(r0 + k)] = 0
                        for k in range(a0, a1):
                            buf[U(r0 + k)] = xf[U(s0 + k)]
                        for k in range(a1, wq):
                            buf[U(r0 + k)] = 0
                    elif sx == 2:
                        rb = r0 + blk
                        for k in range(K0):
                            buf[U(r0 + k)] = xf[U(s0 + 2 * k)] if ka0 <= k < ka1 else 0
                            buf[U(rb + k)] = xf[U(s0 + 2 * k + 1)] if kb0 <= k < kb1 else 0
                        for k in range(K0, K1):
                            buf[U(r0 + k)] = xf[U(s0 + 2 * k)]
                            buf[U(rb + k)] = xf[U(s0 + 2 * k + 1)]
                        for k in range(K1, wq):
                            buf[U(r0 + k)] = xf[U(s0 + 2 * k)] if ka0 <= k < ka1 else 0
                            buf[U(rb + k)] = xf[U(s0 + 2 * k + 1)] if kb0 <= k < kb1 else 0
                    else:
                        for px in range(sx):
                            rp = r0 + px * blk
                            k0 = min(wq, max(0, (lx - px + sx - 1) // sx))
                            k1 = min(wq, max(k0, (w + lx - px + sx - 1) // sx))
                            for k in range(k0):
                                buf[U(rp + k)] = 0
                            for k in range(k0, k1):
                                buf[U(rp + k)] = xf[U(s0 + k * sx + px)]
                            for k in range(k1, wq):
                                buf[U(rp + k)] = 0
    for k in range(sz * sy * sx * blk, buf.shape[0]):
        buf[k] = 0


@jit()
def _fill_2d(xf, xb, h, w, buf, sy, sx, ly, lx, hq, wq):
    # _fill for a 2-D plane (d == dq == 1, sz == 1) with sx == 1 or 2: the same values,
    # in loops LLVM keeps tight (the general _fill took twice as long on a 56^2 plane).
    blk = hq * wq
    a0 = min(wq, lx)
    a1 = min(wq, max(a0, w + lx))
    ka0 = min(wq, (lx + 1) // 2)
    ka1 = min(wq, max(ka0, (w + lx + 1) // 2))
    kb0 = min(wq, lx // 2)
    kb1 = min(wq, max(kb0, (w + lx) // 2))
    K0 = max(ka0, kb0)
    K1 = max(K0, min(ka1, kb1))
    for py in range(sy):
        for j in range(hq):
            iy = j * sy + py - ly
            r0 = py * sx * blk + j * wq
            if not 0 <= iy < h:
                for k in range(wq):
                    buf[U(r0 + k)] = 0
                if sx == 2:
                    for k in range(wq):
                        buf[U(r0 + blk + k)] = 0
                continue
            s0 = xb + iy * w - lx
            if sx == 1:
                for k in range(a0):
                    buf[U(r0 + k)] = 0
                for k in range(a0, a1):
                    buf[U(r0 + k)] = xf[U(s0 + k)]
                for k in range(a1, wq):
                    buf[U(r0 + k)] = 0
            else:
                rb = r0 + blk
                for k in range(K0):
                    buf[U(r0 + k)] = xf[U(s0 + 2 * k)] if ka0 <= k < ka1 else 0
                    buf[U(rb + k)] = xf[U(s0 + 2 * k + 1)] if kb0 <= k < kb1 else 0
                for k in range(K0, K1):
                    buf[U(r0 + k)] = xf[U(s0 + 2 * k)]
                    buf[U(rb + k)] = xf[U(s0 + 2 * k + 1)]
                for k in range(K1, wq):
                    buf[U(r0 + k)] = xf[U(s0 + 2 * k)] if ka0 <= k < ka1 else 0
                    buf[U(rb + k)] = xf[U(s0 + 2 * k + 1)] if kb0 <= k < kb1 else 0
    for k in range(sy * sx * blk, buf.shape[0]):
        buf[k] = 0


@jit()
def _fill_any(xf, xb, d, h, w, buf, sz, sy, sx, lz, ly, lx, dq, hq, wq):
    # The plane copy every kernel calls: the tight 2-D loops where they apply.
    if sz == 1 and dq == 1 and d == 1 and sx <= 2:
        _fill_2d(xf, xb, h, w, buf, sy, sx, ly, lx, hq, wq)
    else:
        _fill(xf, xb, d, h, w, buf, sz, sy, sx, lz, ly, lx, dq, hq, wq)


@jit()
def _taps(acc, run, first, src, off, wt, o, q, k):
    """acc[:run] = (first) or += the sum over the k taps of group q of wt[o, q, t] *
    src[off[q, t] + i]. Nine taps (a whole 3x3 kernel) or eight go in one pass, the rest in
    passes of up to four; the first pass of a plane stores instead of adding, so acc is
    never zeroed. The views at each tap's offset are indexed by the loop counter alone,
    so numba drops its negative-index check and LLVM vectorises."""
    if k >= 8:
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
        if k == 9:
            s8 = src[off[q, 8]:]
            w8 = wt[o, q, 8]
            if first:
                for i in range(run):
                    acc[i] = (w0 * s0[i] + w1 * s1[i] + w2 * s2[i] + w3 * s3[i]
                              + w4 * s4[i] + w5 * s5[i] + w6 * s6[i] + w7 * s7[i]
                              + w8 * s8[i])
            else:
                for i in range(run):
                    acc[i] += (w0 * s0[i] + w1 * s1[i] + w2 * s2[i] + w3 * s3[i]
                               + w4 * s4[i] + w5 * s5[i] + w6 * s6[i] + w7 * s7[i]
                               + w8 * s8[i])
        elif first:
            for i in range(run):
                acc[i] = (w0 * s0[i] + w1 * s1[i] + w2 * s2[i] + w3 * s3[i]
                          + w4 * s4[i] + w5 * s5[i] + w6 * s6[i] + w7 * s7[i])
        else:
            for i in range(run):
                acc[i] += (w0 * s0[i] + w1 * s1[i] + w2 * s2[i] + w3 * s3[i]
                           + w4 * s4[i] + w5 * s5[i] + w6 * s6[i] + w7 * s7[i])
        return
    j = 0
    while j < k:
        s0 = src[off[q, j]:]
        w0 = wt[o, q, j]
        n = min(4, k - j)
        if n == 1:
            if first:
                for i in range(run):
                    acc[i] = w0 * s0[i]
            else:
                for i in range(run):
                    acc[i] += w0 * s0[i]
        else:
            s1 = src[off[q, j + 1]:]
            w1 = wt[o, q, j + 1]
            if n == 2:
                if first:
                    for i in range(run):
                        acc[i] = w0 * s0[i] + w1 * s1[i]
                else:
                    for i in range(run):
                        acc[i] += w0 * s0[i] + w1 * s1[i]
            else:
                s2 = src[off[q, j + 2]:]
                w2 = wt[o, q, j + 2]
                if n == 3:
                    if first:
                        for i in range(run):
                            acc[i] = w0 * s0[i] + w1 * s1[i] + w2 * s2[i]
                    else:
                        for i in range(run):
                            acc[i] += w0 * s0[i] + w1 * s1[i] + w2 * s2[i]
                else:
                    s3 = src[off[q, j + 3]:]
                    w3 = wt[o, q, j + 3]
                    if first:
                        for i in range(run):
                            acc[i] = w0 * s0[i] + w1 * s1[i] + w2 * s2[i] + w3 * s3[i]
                    else:
                        for i in range(run):
                            acc[i] += w0 * s0[i] + w1 * s1[i] + w2 * s2[i] + w3 * s3[i]
        first = False
        j += n


@jit(parallel=True)
def forward(x, wt, cnt, phase, off, out, sz, sy, sx, lz, ly, lx, dq, hq, wq):
    """out (N, O, OD, OH, OW) of the depthwise layer on unpadded x (N, C, D, H, W) with
    pads lo = (lz, ly, lx); wt (O, G, GROUP) the weights of the tap groups (cnt, phase, off
    from tap_groups), O = C*m. x and out C-contiguous."""
    n_img, n_ch, d, h, w = x.shape
    n_out, od, oh, ow = out.shape[1], out.shape[2], out.shape[3], out.shape[4]
    xf = x.reshape(-1)
    outf = out.reshape(-1)
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
        _fill_any(xf, job * d * h * w, d, h, w, buf, sz, sy, sx, lz, ly, lx, dq, hq, wq)
        for j in range(m):
            o = c * m + j
            for oz in range(od):
                for q in range(ng):
                    src = buf[phase[q] * blk + oz * hq * wq:]
                    _taps(acc, run, q == 0, src, off, wt, o, q, cnt[q])
                ob = ((n * n_out + o) * od + oz) * oh * ow
                for oy in range(oh):
                    for i in range(ow):
                        outf[U(ob + oy * ow + i)] = acc[U(oy * wq + i)]


@jit()
def _dots(gq, src, off, q, j, n, run, zero, res):
    """res[t] = the dot product of gq[:run] with src[off[q, j + t]:][:run] for t < n <= 9:
    one pass loads each gradient value once for up to nine taps (a whole 3x3 kernel; the
    rest in passes of up to four). ``zero`` is a zero of the arrays' dtype (a literal 0
    would make the sums float64)."""
    if n == 9:
        s0 = src[off[q, j + 0]:]
        s1 = src[off[q, j + 1]:]
        s2 = src[off[q, j + 2]:]
        s3 = src[off[q, j + 3]:]
        s4 = src[off[q, j + 4]:]
        s5 = src[off[q, j + 5]:]
        s6 = src[off[q, j + 6]:]
        s7 = src[off[q, j + 7]:]
        s8 = src[off[q, j + 8]:]
        a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = a8 = zero
        for i in range(run):
            g = gq[i]
            a0 += g * s0[i]
            a1 += g * s1[i]
            a2 += g * s2[i]
            a3 += g * s3[i]
            a4 += g * s4[i]
            a5 += g * s5[i]
            a6 += g * s6[i]
            a7 += g * s7[i]
            a8 += g * s8[i]
        res[0] = a0
        res[1] = a1
        res[2] = a2
        res[3] = a3
        res[4] = a4
        res[5] = a5
        res[6] = a6
        res[7] = a7
        res[8] = a8
        return
    if n == 8:
        s0 = src[off[q, j + 0]:]
        s1 = src[off[q, j + 1]:]
        s2 = src[off[q, j + 2]:]
        s3 = src[off[q, j + 3]:]
        s4 = src[off[q, j + 4]:]
        s5 = src[off[q, j + 5]:]
        s6 = src[off[q, j + 6]:]
        s7 = src[off[q, j + 7]:]
        a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = zero
        for i in range(run):
            g = gq[i]
            a0 += g * s0[i]
            a1 += g * s1[i]
            a2 += g * s2[i]
            a3 += g * s3[i]
            a4 += g * s4[i]
            a5 += g * s5[i]
            a6 += g * s6[i]
            a7 += g * s7[i]
        res[0] = a0
        res[1] = a1
        res[2] = a2
        res[3] = a3
        res[4] = a4
        res[5] = a5
        res[6] = a6
        res[7] = a7
        return
    if n == 4:
        s0 = src[off[q, j + 0]:]
        s1 = src[off[q, j + 1]:]
        s2 = src[off[q, j + 2]:]
        s3 = src[off[q, j + 3]:]
        a0 = a1 = a2 = a3 = zero
        for i in range(run):
            g = gq[i]
            a0 += g * s0[i]
            a1 += g * s1[i]
            a2 += g * s2[i]
            a3 += g * s3[i]
        res[0] = a0
        res[1] = a1
        res[2] = a2
        res[3] = a3
        return
    if n == 3:
        s0 = src[off[q, j + 0]:]
        s1 = src[off[q, j + 1]:]
        s2 = src[off[q, j + 2]:]
        a0 = a1 = a2 = zero
        for i in range(run):
            g = gq[i]
            a0 += g * s0[i]
            a1 += g * s1[i]
            a2 += g * s2[i]
        res[0] = a0
        res[1] = a1
        res[2] = a2
        return
    if n == 2:
        s0 = src[off[q, j + 0]:]
        s1 = src[off[q, j + 1]:]
        a0 = a1 = zero
        for i in range(run):
            g = gq[i]
            a0 += g * s0[i]
            a1 += g * s1[i]
        res[0] = a0
        res[1] = a1
        return
    if n == 1:
        s0 = src[off[q, j + 0]:]
        a0 = zero
        for i in range(run):
            g = gq[i]
            a0 += g * s0[i]
        res[0] = a0
        return
    raise ValueError("_dots: n must be 1-4, 8 or 9")


@jit(parallel=True)
def weight_grad(x, go, taps, cnt, phase, off, grad, sz, sy, sx, lz, ly, lx, dq, hq, wq):
    """grad (O, T) of the depthwise layer, T = kd*kh*kw flat taps:
    grad[o, t] = sum_{n, out} go[n, o, out] * padded x[n, o // m, out*stride + t*dilation].
    x and go C-contiguous. One job per output channel; per image its input plane goes
    through _fill and its gradient plane is copied into gq, laid out like forward's acc
    (rows of wq, the wq - ow scratch columns zero). Each tap is then one dot product of
    gq with the phase block at the tap's offset over the flat run of oh*wq values, up to
    four taps per pass: long unit-stride loops instead of oh loops of ow (a 56-wide row
    ran 48 values vectorised and 8 scalar).

    The scratch columns multiply zeros by input values outside the tap's window, which
    is exact while those are finite; a plane whose sums come out non-finite (an Inf or
    NaN in its input or gradient, or an overflow) is summed again row by row over the
    window alone, so an Inf outside every window leaves the gradient finite, as in torch.
    The same order in both compiles (serial twin: same bits)."""
    n_img, n_ch, d, h, w = x.shape
    n_out, od, oh, ow = go.shape[1], go.shape[2], go.shape[3], go.shape[4]
    xf = x.reshape(-1)
    gf = go.reshape(-1)
    m = n_out // n_ch
    blk = dq * hq * wq
    size = sz * sy * sx * blk + wq
    ng = cnt.shape[0]
    nt = grad.shape[1]
    run = oh * wq
    for o in prange(n_out):
        c = o // m
        buf = np.empty(size, x.dtype)
        gq = np.zeros(run, x.dtype)
        tot = np.zeros(nt, x.dtype)
        zero = np.zeros(1, x.dtype)
        res = np.empty(GROUP, x.dtype)
        plane = np.empty(nt, x.dtype)
        part = np.empty(ow, x.dtype)
        for n in range(n_img):
            _fill_any(xf, (n * n_ch + c) * d * h * w, d, h, w, buf, sz, sy, sx, lz, ly, lx,
                      dq, hq, wq)
            for t in range(nt):
                plane[t] = 0
            for oz in range(od):
                gz = ((n * n_out + o) * od + oz) * oh * ow
                for oy in range(oh):
                    for i in range(ow):
                        gq[U(oy * wq + i)] = gf[U(gz + oy * ow + i)]
                for q in range(ng):
                    src = buf[phase[q] * blk + oz * hq * wq:]
                    j = 0
                    while j < cnt[q]:
                        k = cnt[q] - j
                        if k < 8:
                            k = min(4, k)
                        _dots(gq, src, off, q, j, k, run, zero[0], res)
                        for t in range(k):
                            plane[taps[q, j + t]] += res[t]
                        j += k
            chk = plane[0] * 0
            for t in range(nt):
                chk += plane[t] * 0
            if chk != 0:
                # Not finite: the window-only sums of this plane (see the docstring).
                for t in range(nt):
                    plane[t] = 0
                for oz in range(od):
                    gz = ((n * n_out + o) * od + oz) * oh * ow
                    for q in range(ng):
                        base = phase[q] * blk + oz * hq * wq
                        for j in range(cnt[q]):
                            b0 = base + off[q, j]
                            for i in range(ow):
                                part[i] = 0
                            for oy in range(oh):
                                g0 = gz + oy * ow
                                s0 = b0 + oy * wq
                                for i in range(ow):
                                    part[i] += gf[U(g0 + i)] * buf[U(s0 + i)]
                            acc = part[0]
                            for i in range(1, ow):
                                acc += part[i]
                            plane[taps[q, j]] += acc
            for t in range(nt):
                tot[t] += plane[t]
        for t in range(nt):
            grad[o, t] = tot[t]


def plan(x_shape, w_shape, stride, dilation, pads):
    """(dq, hq, wq), lo pads, tap groups of a depthwise layer on x of ``x_shape``
    (unpadded when ``pads`` is given). Memoised per layer shape: a whole small layer
    takes a few microseconds, as long as working this out again."""
    try:
        return _plan(x_shape[2:], w_shape[2:], stride, dilation, pads)
    except TypeError:               # lists (unhashable): the same plan, from tuples
        pads = tuple(tuple(p) for p in pads) if pads is not None else None
        return _plan(tuple(x_shape[2:]), tuple(w_shape[2:]), tuple(stride),
                     tuple(dilation), pads)


@functools.lru_cache(maxsize=256)
def _plan(x_sp, k, stride, dilation, pads):
    pads = tuple(tuple(p) for p in pads) if pads is not None else ((0, 0),) * 3
    dims = [d + lo + hi for d, (lo, hi) in zip(x_sp, pads)]
    q = tuple(-(-d // s) for d, s in zip(dims, stride))
    groups = tap_groups(tuple(k), tuple(stride), tuple(dilation), q)
    return q, tuple(lo for lo, _ in pads), groups
