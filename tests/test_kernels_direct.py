"""The direct kernel's launcher contract against the naive reference."""
import numpy as np
import pytest

from fastconv.kernels.cpu import direct
from reference import correlate_ref

BOUNDARIES = ["constant", "wrap", "symmetric", "reflect", "edge"]


@pytest.mark.parametrize("ndim", [1, 2, 3, 4])
@pytest.mark.parametrize("boundary", BOUNDARIES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.complex128, np.int64])
def test_launcher_matches_reference(ndim, boundary, dtype):
    rng = np.random.default_rng(ndim * 100 + BOUNDARIES.index(boundary))
    shape = tuple(rng.integers(2, 7 if ndim < 4 else 4, size=ndim))
    kshape = tuple(rng.integers(1, 5 if ndim < 4 else 3, size=ndim))
    x = (rng.standard_normal(shape) * 4).astype(dtype)
    w = (rng.standard_normal(kshape) * 4).astype(dtype)
    if np.issubdtype(dtype, np.complexfloating):
        x = x + 1j * rng.standard_normal(shape)
    start = tuple(int(s) for s in rng.integers(-4, 2, size=ndim))
    out_shape = tuple(int(m) for m in rng.integers(1, 9, size=ndim))
    out = np.empty(out_shape, dtype)
    direct.correlate(x, w, out, start, boundary, cval=1.5 if dtype != np.int64 else 3)
    ref = correlate_ref(x, w, start, out_shape, boundary, cval=1.5 if dtype != np.int64 else 3)
    tol = 1e-4 if dtype == np.float32 else 1e-10
    if dtype == np.int64:
        np.testing.assert_array_equal(out, ref.real.astype(np.int64))
    else:
        np.testing.assert_allclose(out, ref, rtol=tol, atol=tol * np.abs(ref).max())
