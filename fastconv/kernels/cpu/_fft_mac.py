"""The 3-D FFT launcher's frequency-domain sum over the kernel's planes (``fft._fft_planes``):
``acc[i] = sum_a spec[r0 + i + a] * wspec[a]`` over the planes that exist.

One fused pass per output plane, split over output planes: numpy's multiply and add took
two passes over a full plane of spectra per tap, single-threaded, and were 40% of a
128^3 x 7^3 convolution (this pass: 5-8 ms against 21-26 ms for numpy's, 128 planes of
135 x 68 bins, 7 taps). Strict IEEE arithmetic (no FMA contraction), products summed in
tap order: any split of the planes gives the same bits. numba's complex product
rounds differently from numpy's in the last bit (about half the bins differ by an ulp),
far inside the FFT error bound.
Imported by ``fft`` on first use only (it loads numba).
"""
from __future__ import annotations

from ..._config import get_num_threads
from ..._jit import jit
from ._chunks import run_ranges

__all__ = ["plane_mac", "warm"]


@jit(fastmath=False)
def _plane_mac(spec, wspec, acc, r0):
    m0, nu, nv = acc.shape
    k0 = wspec.shape[0]
    c0 = spec.shape[0]
    for i in range(m0):
        for u in range(nu):
            for v in range(nv):
                acc[i, u, v] = 0
        for a in range(k0):
            p = r0 + i + a
            if p < 0 or p >= c0:
                continue
            for u in range(nu):
                for v in range(nv):
                    acc[i, u, v] += spec[p, u, v] * wspec[a, u, v]


def plane_mac(spec, wspec, acc, r0):
    """Fill ``acc`` (m0, nu, nv) with sum_a spec[r0 + i + a] * wspec[a] (all C-contiguous,
    one complex dtype).

    Split by output planes over Python threads (the kernel releases the GIL), rather
    than run as a numba parallel region: the launcher runs scipy.fft's threads right
    before and after this pass, and numba's OpenMP workers keep spinning for a while
    after a region ends, taking a core from them (128^3 x 7^3 on two threads, under
    load: 48-59 ms with the region, 32 ms when OMP_WAIT_POLICY=passive stopped the
    spinning)."""
    m0 = acc.shape[0]
    threads = get_num_threads()
    if threads <= 1 or m0 < 2 or acc.size * wspec.shape[0] < 1 << 16:
        _plane_mac(spec, wspec, acc, int(r0))
        return acc
    run_ranges(lambda i0, i1: _plane_mac(spec, wspec, acc[i0:i1], int(r0) + i0), m0,
               threads, 4)
    return acc


def warm(dtype):
    """Compile (or load from numba's disk cache) the kernel for complex ``dtype``."""
    import numpy as np
    a = np.zeros((2, 1, 1), dtype)
    _plane_mac(a, a, np.empty_like(a), 0)
