"""The 3-D FFT launcher's frequency-domain sum over the kernel's planes (``fft._fft_planes``):
``acc[i] = sum_a spec[r0 + i + a] * wspec[a]`` over the planes that exist.

One fused pass per output plane, split over output planes: numpy's multiply and add took
two passes over a full plane of spectra per tap, single-threaded, and were 40% of a
128^3 x 7^3 convolution (this pass: 5-8 ms against 21-26 ms for numpy's, 128 planes of
135 x 68 bins, 7 taps). Strict IEEE arithmetic (no FMA contraction), products summed in
tap order: the serial twin gives the parallel kernel's bits. numba's complex product
rounds differently from numpy's in the last bit (about half the bins differ by an ulp),
far inside the FFT error bound.
Imported by ``fft`` on first use only (it loads numba).
"""
from __future__ import annotations

from numba import prange

from ..._jit import jit, run_parallel

__all__ = ["plane_mac", "warm"]


@jit(parallel=True, fastmath=False)
def _plane_mac(spec, wspec, acc, r0):
    m0, nu, nv = acc.shape
    k0 = wspec.shape[0]
    c0 = spec.shape[0]
    for i in prange(m0):
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
    one complex dtype)."""
    run_parallel(_plane_mac, spec, wspec, acc, int(r0),
                 work=acc.size * wspec.shape[0])
    return acc


def warm(dtype):
    """Compile (or load from numba's disk cache) both the parallel kernel and its serial
    twin for complex ``dtype``, whatever size the call at hand has."""
    import numpy as np
    from ..._jit import serial_twin
    a = np.zeros((2, 1, 1), dtype)
    for kernel in (_plane_mac, serial_twin(_plane_mac)):
        kernel(a, a, np.empty_like(a), 0)
