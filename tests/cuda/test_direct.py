"""The CUDA direct launcher against the float64 reference (tests/reference.py) and the
CPU launcher: every boundary, odd and even kernels, the modes' start offsets, ranks 1-4,
every kernel dtype, NaN/Inf locality, int64 exactness; the shared-memory tiles' index
maths with shapes spanning several tiles, and each kernel path (exact 3x3..9x9, the
general tile and its tap chunks, the 1-D tile and its tap chunks). The CPU launchers are
held to the same reference by their own tests (calling them here would JIT-compile the
CPU kernels inside the simulator run: ~15-25 s per dtype)."""
import numpy as np
import pytest

from _cuda_util import BOUNDARIES, DTYPES, _memory, check, data, dev, host, mode_start
from fastconv.kernels.cuda import direct
from reference import correlate_ref

pytestmark = pytest.mark.cuda


def _run(x, w, start, out_shape, boundary="constant", cval=0):
    out = _memory.empty(out_shape, x.dtype)
    direct.correlate(dev(x), w, out, start, boundary, cval)
    return host(out)


@pytest.mark.parametrize("boundary", BOUNDARIES)
@pytest.mark.parametrize("kshape", [(3, 3), (2, 4), (5, 1)])
def test_2d_every_boundary_odd_even_kernels(boundary, kshape):
    rng = np.random.default_rng(BOUNDARIES.index(boundary))
    x = data(rng, (9, 11), np.float64)
    w = data(rng, kshape, np.float64)
    start, oshape = mode_start("same", x.shape, w.shape)
    check(_run(x, w, start, oshape, boundary, 1.5),
          correlate_ref(x, w, start, oshape, boundary, 1.5), np.float64)


@pytest.mark.parametrize("mode", ["full", "valid"])
@pytest.mark.parametrize("boundary", ["constant", "reflect"])
def test_2d_modes_start_offsets(mode, boundary):
    rng = np.random.default_rng(7)
    x = data(rng, (8, 10), np.float64)
    w = data(rng, (3, 4), np.float64)
    start, oshape = mode_start(mode, x.shape, w.shape)
    check(_run(x, w, start, oshape, boundary, -2.0),
          correlate_ref(x, w, start, oshape, boundary, -2.0), np.float64)


def test_start_far_outside_and_tiny_input():
    """Windows entirely in the boundary region (periodic maps wrap several times)."""
    rng = np.random.default_rng(8)
    x = data(rng, (2, 3), np.float64)
    w = data(rng, (3, 3), np.float64)
    for boundary in BOUNDARIES:
        check(_run(x, w, (-7, 5), (4, 6), boundary, 0.5),
              correlate_ref(x, w, (-7, 5), (4, 6), boundary, 0.5), np.float64)


@pytest.mark.parametrize("dtype", DTYPES)
def test_every_dtype_matches_reference_and_cpu(dtype):
    rng = np.random.default_rng(9)
    x = data(rng, (7, 9), dtype)
    w = data(rng, (3, 3), dtype)
    start, oshape = mode_start("same", x.shape, w.shape)
    cval = 3 if np.dtype(dtype).kind == "i" else 1.5
    got = _run(x, w, start, oshape, "symmetric", cval)
    check(got, correlate_ref(x, w, start, oshape, "symmetric", cval), dtype)


@pytest.mark.parametrize("kshape", [(3, 3), (2, 3)])
def test_int64_is_exact_beyond_float64(kshape):
    """Values near 2**40 times taps near 2**10: sums past float64's 2**53 mantissa;
    the reference is the same sum in int64 over numpy.pad's extension."""
    rng = np.random.default_rng(10)
    x = rng.integers(-2 ** 40, 2 ** 40, size=(6, 8), dtype=np.int64)
    w = rng.integers(-2 ** 10, 2 ** 10, size=kshape, dtype=np.int64)
    start, oshape = mode_start("same", x.shape, w.shape)
    pads = [(-s, m + k - 1 + s - n) for s, m, k, n in zip(start, oshape, kshape, x.shape)]
    xp = np.pad(x, pads, mode="wrap")
    ref = np.zeros(oshape, np.int64)
    for j in np.ndindex(*kshape):
        ref += w[j] * xp[j[0]:j[0] + oshape[0], j[1]:j[1] + oshape[1]]
    np.testing.assert_array_equal(_run(x, w, start, oshape, "wrap"), ref)


@pytest.mark.parametrize("ksize", [5, 7, 9])
def test_exact_small_kernels_several_tiles(ksize):
    """The 64 x 32 output tiles: a 70 x 40 output spans 2 x 2 of them (and 9x9's halo)."""
    rng = np.random.default_rng(ksize)
    x = data(rng, (70, 40), np.float32)
    w = data(rng, (ksize, ksize), np.float32)
    start, oshape = mode_start("same", x.shape, w.shape)
    check(_run(x, w, start, oshape, "reflect"),
          correlate_ref(x, w, start, oshape, "reflect"), np.float32)


def test_general_tile_several_tiles_and_tap_chunks():
    rng = np.random.default_rng(11)
    x = data(rng, (34, 33), np.float64)          # RY_GEN tiles: 32 x 32 outputs each
    w = data(rng, (4, 6), np.float64)
    start, oshape = mode_start("same", x.shape, w.shape)
    check(_run(x, w, start, oshape, "edge"),
          correlate_ref(x, w, start, oshape, "edge"), np.float64)
    x = data(rng, (6, 5), np.float64)            # 17 > GEN_MAX rows: two row chunks
    w = data(rng, (17, 2), np.float64)
    start, oshape = mode_start("full", x.shape, w.shape)
    check(_run(x, w, start, oshape, "wrap"),
          correlate_ref(x, w, start, oshape, "wrap"), np.float64)
    x = data(rng, (3, 4), np.float64)            # 18 x 17: 2 x 2 chunks, constant fill
    w = data(rng, (18, 17), np.float64)
    check(_run(x, w, (-10, -9), (3, 4), "constant", 0.5),
          correlate_ref(x, w, (-10, -9), (3, 4), "constant", 0.5), np.float64)


@pytest.mark.parametrize("boundary", BOUNDARIES)
@pytest.mark.parametrize("k", [4, 5])
def test_1d_every_boundary(boundary, k):
    rng = np.random.default_rng(k)
    x = data(rng, (13,), np.float64)
    w = data(rng, (k,), np.float64)
    for mode in ("same", "full"):
        start, oshape = mode_start(mode, x.shape, w.shape)
        check(_run(x, w, start, oshape, boundary, 2.0),
              correlate_ref(x, w, start, oshape, boundary, 2.0), np.float64)


def test_1d_several_blocks_and_long_kernel():
    rng = np.random.default_rng(12)
    x = data(rng, (1100,), np.float32)            # two blocks of 1024 outputs
    w = data(rng, (5,), np.float32)
    start, oshape = mode_start("same", x.shape, w.shape)
    check(_run(x, w, start, oshape, "reflect"),
          correlate_ref(x, w, start, oshape, "reflect"), np.float32)
    x = data(rng, (20,), np.float64)              # 600 taps > K1_MAX: two tap chunks
    w = data(rng, (600,), np.float64)
    check(_run(x, w, (-590,), (12,), "wrap"),
          correlate_ref(x, w, (-590,), (12,), "wrap"), np.float64)


@pytest.mark.parametrize("kshape,boundary", [((2, 3, 3), "symmetric"), ((3, 2, 1), "constant")])
def test_3d(kshape, boundary):
    rng = np.random.default_rng(13)
    x = data(rng, (4, 5, 6), np.float64)
    w = data(rng, kshape, np.float64)
    start, oshape = mode_start("same", x.shape, w.shape)
    check(_run(x, w, start, oshape, boundary, 1.0),
          correlate_ref(x, w, start, oshape, boundary, 1.0), np.float64)


def test_4d_including_constant_slabs():
    rng = np.random.default_rng(14)
    x = data(rng, (2, 3, 3, 4), np.float64)
    w = data(rng, (2, 1, 2, 3), np.float64)
    start, oshape = mode_start("full", x.shape, w.shape)       # leading taps off the edge
    check(_run(x, w, start, oshape, "constant", 0.5),
          correlate_ref(x, w, start, oshape, "constant", 0.5), np.float64)


@pytest.mark.parametrize("kshape", [(3, 3), (2, 5)])
def test_nan_inf_stay_local(kshape):
    rng = np.random.default_rng(15)
    x = data(rng, (9, 10), np.float64)
    x[2, 3] = np.nan
    x[7, 8] = np.inf
    w = data(rng, kshape, np.float64)
    start, oshape = mode_start("same", x.shape, w.shape)
    with np.errstate(invalid="ignore"):
        ref = correlate_ref(x, w, start, oshape, "reflect")
    got = _run(x, w, start, oshape, "reflect")
    check(got, ref, np.float64)
    assert np.isfinite(got).sum() > got.size // 2


def test_empty_kernel_and_empty_output():
    x = np.ones((3, 3))
    np.testing.assert_array_equal(_run(x, np.ones((0, 2)), (0, 0), (3, 3)), np.zeros((3, 3)))
    assert _run(x, np.ones((2, 2)), (0, 0), (0, 3)).shape == (0, 3)
