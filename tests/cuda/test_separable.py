"""The CUDA separable launcher against the float64 reference: every boundary (the
constant fill carried through the passes), the modes' start offsets, 1-3 dimensions,
rank-2 kernels (sum of terms), factors computed from the kernel, int64 exactness, both
pass kernels (inner size >= 32 and the line kernel)."""
import numpy as np
import pytest

from _cuda_util import BOUNDARIES, _memory, check, data, dev, host, mode_start
from fastconv.kernels.cuda import separable
from reference import correlate_ref

pytestmark = pytest.mark.cuda


def _kernel(terms):
    total = 0
    for t in terms:
        k = t[0]
        for f in t[1:]:
            k = np.multiply.outer(k, f)
        total = total + k
    return total


def _run(x, terms, start, oshape, boundary, cval, factors=True):
    w = _kernel(terms)
    out = _memory.empty(oshape, x.dtype)
    separable.correlate_separable(dev(x), w, out, start, boundary, cval,
                                  factors=terms if factors else None)
    return host(out), w


@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_2d_every_boundary(boundary):
    rng = np.random.default_rng(20 + BOUNDARIES.index(boundary))
    x = data(rng, (4, 11), np.float64)
    terms = [[data(rng, (3,), np.float64), data(rng, (4,), np.float64)]]
    start, oshape = mode_start("same", x.shape, (3, 4))
    got, w = _run(x, terms, start, oshape, boundary, 1.5)
    check(got, correlate_ref(x, w, start, oshape, boundary, 1.5), np.float64)


@pytest.mark.parametrize("mode", ["full", "valid"])
def test_modes_constant_fill_and_column_kernel(mode):
    """A 40-wide image: the axis-0 pass runs the column kernel (inner size >= 32)."""
    rng = np.random.default_rng(25)
    x = data(rng, (5, 40), np.float32)
    terms = [[data(rng, (2,), np.float32), data(rng, (5,), np.float32)]]
    start, oshape = mode_start(mode, x.shape, (2, 5))
    got, w = _run(x, terms, start, oshape, "constant", -3.0)
    check(got, correlate_ref(x, w, start, oshape, "constant", -3.0), np.float32)


@pytest.mark.parametrize("dtype", [np.int64, np.complex128])
def test_dtypes_and_computed_factors(dtype):
    rng = np.random.default_rng(26)
    x = data(rng, (5, 6), dtype)
    if np.dtype(dtype).kind == "i":
        terms = [[np.array([1, 2, 1]), np.array([1, 0, -1])]]          # Sobel, exact
    else:
        terms = [[data(rng, (3,), dtype), data(rng, (2,), dtype)]]
    start, oshape = mode_start("same", x.shape, (3, len(terms[0][1])))
    got, w = _run(x, [[f.astype(dtype) for f in t] for t in terms], start, oshape,
                  "reflect", 2, factors=False)
    check(got, correlate_ref(x, w.astype(dtype), start, oshape, "reflect", 2), dtype)


def test_rank2_kernel_sums_terms():
    rng = np.random.default_rng(27)
    x = data(rng, (5, 7), np.float64)
    terms = [[data(rng, (3,), np.float64), data(rng, (3,), np.float64)] for _ in range(2)]
    start, oshape = mode_start("same", x.shape, (3, 3))
    got, w = _run(x, terms, start, oshape, "wrap", 0)
    check(got, correlate_ref(x, w, start, oshape, "wrap"), np.float64)


@pytest.mark.parametrize("shape,boundary", [((3, 4, 5), "symmetric"), ((17,), "edge")])
def test_3d_and_1d(shape, boundary):
    rng = np.random.default_rng(28)
    x = data(rng, shape, np.float64)
    ks = (2, 3, 2)[:len(shape)] if len(shape) == 3 else (4,)
    terms = [[data(rng, (k,), np.float64) for k in ks]]
    start, oshape = mode_start("full", shape, ks)
    got, w = _run(x, terms, start, oshape, boundary, 0.5)
    check(got, correlate_ref(x, w, start, oshape, boundary, 0.5), np.float64)


def test_nan_stays_local():
    rng = np.random.default_rng(29)
    x = data(rng, (5, 8), np.float64)
    x[2, 4] = np.nan
    terms = [[data(rng, (3,), np.float64), data(rng, (3,), np.float64)]]
    start, oshape = mode_start("same", x.shape, (3, 3))
    got, w = _run(x, terms, start, oshape, "reflect", 0)
    with np.errstate(invalid="ignore"):
        check(got, correlate_ref(x, w, start, oshape, "reflect"), np.float64)


def test_2d_unfused_long_factor_and_fused_several_tiles():
    """A 27-tap factor (longer than the fused tile holds): two passes; a 35 x 33 output:
    2 x 2 fused tiles with both halos."""
    rng = np.random.default_rng(30)
    x = data(rng, (3, 5), np.float64)
    terms = [[data(rng, (27,), np.float64), data(rng, (2,), np.float64)]]
    start, oshape = mode_start("full", x.shape, (27, 2))
    got, w = _run(x, terms, start, oshape, "constant", 0.5)
    check(got, correlate_ref(x, w, start, oshape, "constant", 0.5), np.float64)
    x = data(rng, (35, 33), np.float32)
    terms = [[data(rng, (5,), np.float32), data(rng, (3,), np.float32)]]
    start, oshape = mode_start("same", x.shape, (5, 3))
    got, w = _run(x, terms, start, oshape, "reflect", 0)
    check(got, correlate_ref(x, w, start, oshape, "reflect"), np.float32)
