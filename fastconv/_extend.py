"""Boundary extension shared by the CPU launchers (plain NumPy, no kernels).

``index_map`` maps extended indices to source indices with numpy.pad's boundary names
(-1 where the constant fill is read); ``window`` materialises the part of the extended
input an output window reads, for launchers that need it as one array (FFT paths with a
non-constant boundary).
"""
from __future__ import annotations

import numpy as np


def index_map(n: int, start: int, length: int, boundary: str) -> np.ndarray:
    """Source index of extended indices ``start .. start+length-1`` of an axis of length
    ``n``; -1 where the constant fill applies."""
    e = np.arange(start, start + length, dtype=np.int64)
    if n == 0:
        return np.full(length, -1, np.int64)
    if boundary == "constant":
        return np.where((e >= 0) & (e < n), e, -1)
    if boundary == "wrap":
        return e % n
    if boundary == "edge":
        return np.clip(e, 0, n - 1)
    if boundary == "symmetric":              # ... b a | a b c | c b ...
        e = e % (2 * n)
        return np.where(e < n, e, 2 * n - 1 - e)
    if boundary == "reflect":                # ... c b | a b c | b a ...
        if n == 1:
            return np.zeros(length, np.int64)
        p = 2 * n - 2
        e = e % p
        return np.where(e < n, e, p - e)
    raise ValueError(f"unknown boundary {boundary!r}")


def window(x, w_shape, out_shape, start, boundary, cval):
    """The extended input restricted to what the output reads, C-contiguous: index 0 of
    each axis is extended index ``start``."""
    spans = [m + k - 1 for k, m in zip(w_shape, out_shape)]
    inside = all(s >= 0 and s + L <= n for n, s, L in zip(x.shape, start, spans))
    if boundary == "constant" or inside:
        # Copy only the part of x that is read; the rest is the fill value. Reads that
        # stay inside x never meet the boundary rule: x itself when it is all read (a
        # Dask block's piece), not a gathered copy.
        pads, core = [], []
        for n, s, L in zip(x.shape, start, spans):
            pads.append((max(0, -s), max(0, s + L - n)))
            core.append(slice(min(max(0, s), n), max(min(n, s + L), 0)))
        part = x[tuple(core)]
        pads = [(min(a, L), min(b, L - min(a, L))) for (a, b), L in zip(pads, spans)]
        if all(p == (0, 0) for p in pads):
            return np.ascontiguousarray(part)
        return np.pad(part, pads, mode="constant", constant_values=cval)
    maps = [index_map(n, s, L, boundary) for n, s, L in zip(x.shape, start, spans)]
    return np.ascontiguousarray(x[np.ix_(*maps)])
