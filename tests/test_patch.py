"""fastconv.patch_scipy / unpatch_scipy / scipy_patched: fastconv's functions in scipy's
namespaces, and scipy's own objects back afterwards."""
import importlib
import subprocess
import sys
import threading
import warnings

import numpy as np
import pytest
import scipy.ndimage
import scipy.signal

import fastconv
import fastconv.ndimage
from fastconv import _patch
from fastconv._compat import scipy_choose_conv_method

SIGNAL = ["convolve", "correlate", "fftconvolve", "oaconvolve", "convolve2d",
          "correlate2d", "choose_conv_method"]
PRIVATE = ["scipy.signal._signaltools", "scipy.ndimage._filters"]


def _snapshot():
    """Every attribute a patch may touch, by identity."""
    mods = [scipy.signal, scipy.ndimage] + [importlib.import_module(m) for m in PRIVATE]
    names = SIGNAL + list(fastconv.ndimage.__all__)
    return {(m.__name__, n): vars(m).get(n) for m in mods for n in names}


@pytest.fixture(autouse=True)
def _never_leave_scipy_patched():
    yield
    while fastconv.scipy_is_patched():
        fastconv.unpatch_scipy()
        _patch._depth = 0
        _patch._restore()


def _expected(name, module="scipy.signal"):
    if module == "scipy.signal":
        return scipy_choose_conv_method if name == "choose_conv_method" else \
            getattr(fastconv, name)
    return getattr(fastconv.ndimage, name)


def test_patch_replaces_public_and_private_names_and_unpatch_restores_the_same_objects():
    before = _snapshot()
    fastconv.patch_scipy()
    assert fastconv.scipy_is_patched()
    for name in SIGNAL:
        assert getattr(scipy.signal, name) is _expected(name)
        assert vars(importlib.import_module("scipy.signal._signaltools"))[name] is \
            _expected(name)
    for name in fastconv.ndimage.__all__:
        assert getattr(scipy.ndimage, name) is getattr(fastconv.ndimage, name)
        assert vars(importlib.import_module("scipy.ndimage._filters"))[name] is \
            getattr(fastconv.ndimage, name)
    fastconv.unpatch_scipy()
    assert not fastconv.scipy_is_patched()
    assert _snapshot() == before


def test_from_import_after_patching_sees_fastconv():
    fastconv.patch_scipy()
    from scipy.ndimage import gaussian_filter
    from scipy.signal import convolve
    from scipy.signal._signaltools import fftconvolve
    assert convolve is fastconv.convolve
    assert fftconvolve is fastconv.fftconvolve
    assert gaussian_filter is fastconv.ndimage.gaussian_filter
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from scipy.signal import signaltools      # scipy's deprecated shim reads _signaltools
        assert signaltools.correlate2d is fastconv.correlate2d


def test_patch_and_unpatch_are_idempotent():
    before = _snapshot()
    fastconv.patch_scipy()
    fastconv.patch_scipy()
    assert scipy.signal.convolve is fastconv.convolve
    fastconv.unpatch_scipy()
    assert _snapshot() == before
    fastconv.unpatch_scipy()                       # not patched: nothing to do
    assert _snapshot() == before


def test_context_managers_nest_and_restore_only_at_the_outermost_exit():
    before = _snapshot()
    with fastconv.scipy_patched():
        with fastconv.scipy_patched():
            assert scipy.ndimage.sobel is fastconv.ndimage.sobel
        assert scipy.ndimage.sobel is fastconv.ndimage.sobel
    assert _snapshot() == before


def test_context_manager_inside_patch_scipy_leaves_the_patch_in_force():
    fastconv.patch_scipy()
    with fastconv.scipy_patched():
        pass
    assert scipy.signal.convolve is fastconv.convolve
    fastconv.unpatch_scipy()
    assert scipy.signal.convolve is not fastconv.convolve


def test_unpatch_inside_a_block_waits_for_the_block():
    before = _snapshot()
    with fastconv.scipy_patched():
        fastconv.patch_scipy()
        fastconv.unpatch_scipy()
        assert scipy.signal.convolve is fastconv.convolve
    assert _snapshot() == before


def test_context_manager_restores_on_exception_and_works_as_decorator():
    before = _snapshot()
    with pytest.raises(ZeroDivisionError):
        with fastconv.scipy_patched():
            1 / 0
    assert _snapshot() == before

    @fastconv.scipy_patched()
    def run():
        return scipy.signal.convolve is fastconv.convolve
    assert run()
    assert _snapshot() == before


def test_blocks_in_threads_restore_after_the_last_one():
    before = _snapshot()
    inside = threading.Barrier(3)
    leave = threading.Event()

    def worker():
        with fastconv.scipy_patched():
            inside.wait()
            leave.wait()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    inside.wait()
    assert scipy.signal.convolve is fastconv.convolve
    leave.set()
    for t in threads:
        t.join()
    assert _snapshot() == before


def test_a_name_replaced_by_other_code_while_patched_is_left_alone():
    original = scipy.signal.convolve
    fastconv.patch_scipy()

    def other(*args, **kwargs):
        return None
    scipy.signal.convolve = other
    try:
        with pytest.warns(RuntimeWarning, match="scipy.signal.convolve was replaced"):
            fastconv.unpatch_scipy()
        assert scipy.signal.convolve is other
        assert scipy.signal.correlate is not fastconv.correlate   # the rest restored
    finally:
        scipy.signal.convolve = original


def test_patched_scipy_computes_with_fastconv():
    x = np.random.default_rng(0).standard_normal((20, 30))
    w = np.ones((3, 3)) / 9
    with fastconv.scipy_patched():
        got = scipy.signal.convolve2d(x, w, mode="same", boundary="symm")
        img = scipy.ndimage.gaussian_filter(x, 2.0)
        assert scipy.signal.choose_conv_method(x, w) in ("direct", "fft")
    np.testing.assert_allclose(got, scipy.signal.convolve2d(x, w, mode="same",
                                                            boundary="symm"), rtol=1e-12)
    np.testing.assert_array_equal(img, scipy.ndimage.gaussian_filter(x, 2.0))


def test_names_imported_before_patching_keep_scipy():
    # The documented limitation, in a fresh interpreter (nothing else imported first).
    code = ("from scipy.signal import convolve as early\n"
            "import fastconv, scipy.signal\n"
            "fastconv.patch_scipy()\n"
            "from scipy.signal import convolve as late\n"
            "assert late is fastconv.convolve and early is not fastconv.convolve\n"
            "fastconv.unpatch_scipy()\n"
            "assert scipy.signal.convolve is early\n")
    subprocess.run([sys.executable, "-c", code], check=True)
