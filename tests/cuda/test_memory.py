"""The CUDA memory helpers (_memory): conversions from every input dtype and layout, the
result cast/reversal of _dispatch._finish, the finiteness check, host copies."""
import numpy as np
import pytest

from _cuda_util import _memory, dev, host

pytestmark = pytest.mark.cuda

IN_DTYPES = [np.bool_, np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32,
             np.int64, np.uint64, np.float16, np.float32, np.float64, np.complex64,
             np.complex128]


def _compute(dt):
    from fastconv._validate import compute_dtype
    return compute_dtype(np.dtype(dt))


@pytest.mark.parametrize("dtype", IN_DTYPES)
def test_convert_every_dtype_and_layout(dtype):
    rng = np.random.default_rng(1)
    dt = np.dtype(dtype)
    if dt.kind == "b":
        h = rng.standard_normal((3, 4, 5)) > 0
    elif dt.kind in "iu":              # the whole range (uint64: past int64's, wraps)
        info = np.iinfo(dt)
        h = rng.integers(info.min, info.max, size=(3, 4, 5), dtype=dt, endpoint=True)
    else:
        h = (rng.standard_normal((3, 4, 5)) * 300).astype(dtype)
    d = dev(h)
    cdt = _compute(dtype)
    for view, hv in [(d, h), (d[::-1, :, ::2], h[::-1, :, ::2]), (d[1, ::-1], h[1, ::-1])]:
        got = host(_memory.convert(view, cdt))
        assert got.dtype == cdt and got.flags.c_contiguous
        np.testing.assert_array_equal(got, hv.astype(cdt))


def test_convert_returns_the_array_when_it_fits_and_handles_rank_5():
    h = np.arange(2 * 3 * 2 * 2 * 3, dtype=np.float64).reshape(2, 3, 2, 2, 3)
    d = dev(h)
    assert _memory.convert(d, np.float64) is d
    v = d[:, ::-1, :, :, ::2]            # rank 5 that no merging reduces to 4
    np.testing.assert_array_equal(host(_memory.convert(v, np.float32)),
                                  h[:, ::-1, :, :, ::2].astype(np.float32))


@pytest.mark.parametrize("rt", [np.bool_, np.int8, np.uint8, np.int16, np.uint16,
                                np.int32, np.uint32, np.uint64])
@pytest.mark.parametrize("reverse", [False, True])
def test_finish_integer_results_wrap_like_astype(rt, reverse):
    h = np.arange(-70000, 70000, 997, dtype=np.int64)[:140].reshape(10, -1)
    h[0, 0] = -(2 ** 62) - 5
    got = host(_memory.finish(dev(h), rt, reverse))
    ref = (h != 0) if rt == np.bool_ else h.astype(rt)
    if reverse:
        ref = ref[::-1, ::-1]
    assert got.dtype == rt
    np.testing.assert_array_equal(got, ref)


def test_finish_float16_complex_reverse_conj():
    rng = np.random.default_rng(2)
    f = rng.standard_normal((4, 5)).astype(np.float32) * 1e5    # some overflow float16
    np.testing.assert_array_equal(host(_memory.finish(dev(f), np.float16)),
                                  f.astype(np.float16))
    c = (rng.standard_normal((3, 4)) + 1j * rng.standard_normal((3, 4))).astype(np.complex64)
    np.testing.assert_array_equal(host(_memory.finish(dev(c), np.complex64, True, True)),
                                  np.conj(c[::-1, ::-1]))
    np.testing.assert_array_equal(host(_memory.finish(dev(c), np.complex64, True, False)),
                                  c[::-1, ::-1])
    d = dev(c)
    assert _memory.finish(d, np.complex64) is d


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.complex64, np.complex128])
def test_all_finite(dtype):
    a = np.ones(700, dtype)
    assert _memory.all_finite(dev(a))
    for bad in (np.nan, np.inf, -np.inf):
        b = a.copy()
        b[613] = bad
        assert not _memory.all_finite(dev(b))
    if np.dtype(dtype).kind == "c":
        b = a.copy()
        b[5] = complex(1, np.nan)
        assert not _memory.all_finite(dev(b))
    assert _memory.all_finite(dev(np.arange(5)))        # integers are always finite


def test_empty_zeros_fill_and_copies():
    z = _memory.zeros((3, 4), np.complex128)
    np.testing.assert_array_equal(host(z), np.zeros((3, 4), np.complex128))
    _memory.fill(z, 2 + 1j)
    np.testing.assert_array_equal(host(z), np.full((3, 4), 2 + 1j))
    e = _memory.empty((2, 0), np.float32)
    assert e.shape == (2, 0)
    h = np.arange(6.0).reshape(2, 3)[:, ::-1]
    np.testing.assert_array_equal(host(_memory.from_host(h)), h)


@pytest.mark.parametrize("src,dst", [(np.int8, np.float32), (np.uint16, np.float64),
                                     (np.float32, np.complex128), (np.bool_, np.float64),
                                     (np.float16, np.complex64), (np.uint64, np.float64)])
def test_convert_across_kinds(src, dst):
    """Promotions the dispatcher asks for (an integer image with a float kernel, a real
    one with a complex kernel), contiguous and strided."""
    h = (np.arange(-30, 30).reshape(6, 10) * 7).astype(src)
    d = dev(h)
    for view, hv in [(d, h), (d[::-2, 1:], h[::-2, 1:])]:
        np.testing.assert_array_equal(host(_memory.convert(view, dst)), hv.astype(dst))
