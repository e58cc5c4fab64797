"""The one dispatch path: every public call reaches ``_dispatch``'s execute step, imports go
downward, memos are bounded and keyed by everything they depend on, the tuning mode is
settable from code, and array kinds are read in one place."""
import ast
import os
import threading

import numpy as np
import pytest
import scipy.ndimage as sndi
import scipy.signal as ss

import fastconv
from fastconv import _arrays, _config, _dispatch, _memo, tuner
from fastconv import ndimage as fnd
from fastconv import nn as fnn

PKG = os.path.dirname(fastconv.__file__)
PUBLIC = ["__init__.py", "signal.py", "ndimage.py", "nn.py", "_fftconvolve.py",
          "_planapi.py", "_patch.py", "_compat.py", "_arrays.py", "_validate.py"]


def _imports(path):
    """Every module a file imports, as absolute 'fastconv.x.y' names (relative resolved)."""
    rel = os.path.relpath(path, os.path.dirname(PKG))[:-3].replace(os.sep, ".")
    package = rel.rsplit(".", 1)[0] if not rel.endswith("__init__") else rel[:-9]
    out = set()
    for node in ast.walk(ast.parse(open(path).read())):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            out.add(mod)
            out.update(f"{mod}.{a.name}" for a in node.names)
    return out


@pytest.mark.parametrize("name", PUBLIC)
def test_no_public_module_imports_a_kernel_module(name):
    bad = {m for m in _imports(os.path.join(PKG, name))
           if m.startswith("fastconv.kernels.") and m != "fastconv.kernels.methods"}
    assert not bad, f"{name} imports kernel modules {bad}; go through _dispatch"


def test_tuner_never_imports_the_public_layer_or_the_dispatcher():
    upward = {"fastconv.signal", "fastconv.ndimage", "fastconv.nn", "fastconv._planapi",
              "fastconv._fftconvolve", "fastconv._dispatch", "fastconv._validate"}
    tdir = os.path.join(PKG, "tuner")
    for f in os.listdir(tdir):
        if f.endswith(".py"):
            assert not (_imports(os.path.join(tdir, f)) & upward), f


def test_kernels_import_nothing_above_them():
    allowed = {"fastconv._jit", "fastconv._config", "fastconv._fftsize",
               "fastconv._extend", "fastconv._finite", "fastconv._separable", "fastconv._memo"}
    kdir = os.path.join(PKG, "kernels", "cpu")
    for f in os.listdir(kdir):
        if not f.endswith(".py"):
            continue
        for m in _imports(os.path.join(kdir, f)):
            if m.startswith("fastconv.") and not m.startswith("fastconv.kernels"):
                assert m.rsplit(".", 1)[0] in allowed or m in allowed, (f, m)


def test_cuda_kernels_import_nothing_above_them():
    """kernels/cuda: the same rule; numba-cuda only through _backend (checked by name:
    no other module there imports numba.cuda)."""
    allowed = {"fastconv._config", "fastconv._fftsize", "fastconv._extend",
               "fastconv._finite", "fastconv._separable"}
    kdir = os.path.join(PKG, "kernels", "cuda")
    for f in os.listdir(kdir):
        if not f.endswith(".py"):
            continue
        mods = _imports(os.path.join(kdir, f))
        for m in mods:
            if m.startswith("fastconv.") and not m.startswith("fastconv.kernels"):
                assert m.rsplit(".", 1)[0] in allowed or m in allowed, (f, m)
        if f != "_backend.py":
            assert not any(m == "numba.cuda" or m.startswith("numba.cuda.")
                           for m in mods), f


@pytest.fixture
def counted(monkeypatch):
    """Count the dispatcher's execute steps per operation kind."""
    counts = {}
    for kind, fn in list(_dispatch._EXECUTE.items()):
        def wrapped(*a, _fn=fn, _kind=kind):
            counts[_kind] = counts.get(_kind, 0) + 1
            return _fn(*a)
        monkeypatch.setitem(_dispatch._EXECUTE, kind, wrapped)
    # A plan's bound kernel call (``_dispatch.bind``) is the dispatcher's too.
    from fastconv import _planapi

    def bound(*a):
        counts["bind"] = counts.get("bind", 0) + 1
        return _dispatch.bind(*a)
    monkeypatch.setattr(_planapi, "bind", bound)
    return counts


def test_every_public_call_reaches_the_dispatcher(counted):
    rng = np.random.default_rng(0)
    x2 = rng.standard_normal((12, 14))
    w2 = rng.standard_normal((3, 4))
    x4 = rng.standard_normal((1, 2, 9, 9)).astype(np.float32)
    w4 = rng.standard_normal((3, 2, 3, 3)).astype(np.float32)
    calls = {
        "convolve": lambda: fastconv.convolve(x2, w2),
        "correlate": lambda: fastconv.correlate(x2, w2, "same", method="fft"),
        "convolve2d": lambda: fastconv.convolve2d(x2, w2, boundary="symm"),
        "correlate2d": lambda: fastconv.correlate2d(x2, w2, "valid"),
        "fftconvolve": lambda: fastconv.fftconvolve(x2, w2),
        "fftconvolve axes": lambda: fastconv.fftconvolve(x2, w2[:1], axes=1),
        "oaconvolve": lambda: fastconv.oaconvolve(x2, w2, "same"),
        "plan": lambda: fastconv.plan(x2, w2, "same")(x2),
        "choose_conv_method": lambda: fastconv.choose_conv_method(x2, w2, measure=True),
        "ndimage.correlate": lambda: fnd.correlate(x2, w2),
        "ndimage.gaussian_filter": lambda: fnd.gaussian_filter(x2, 1.5),
        "ndimage.uniform_filter": lambda: fnd.uniform_filter(x2, 3),
        "ndimage.sobel": lambda: fnd.sobel(x2),
        "ndimage.laplace": lambda: fnd.laplace(x2),
        "nn.conv2d": lambda: fnn.conv2d(x4, w4, padding=1),
        "nn.conv_transpose2d": lambda: fnn.conv_transpose2d(x4[:, :2], w4[:2], stride=2),
        "nn.conv2d_weight": lambda: fnn.conv2d_weight(x4, w4.shape,
                                                      fnn.conv2d(x4, w4)),
    }
    for name, call in calls.items():
        before = sum(counted.values())
        call()
        assert sum(counted.values()) > before, name


def test_plan_and_one_shot_take_the_same_route():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 50, 60))
    w = rng.standard_normal((5, 7, 7))
    want = ss.convolve(x, w, "same")
    for method in ("fft", "oa"):
        p = fastconv.plan(x, w, "same", method=method)
        for _ in range(3):
            np.testing.assert_allclose(p(x), want, atol=1e-10)
        np.testing.assert_allclose(fastconv.convolve(x, w, "same", method=method), want,
                                   atol=1e-10)


def test_kernels_with_equal_bytes_and_other_dtypes_share_no_state():
    # Large enough that the model picks the separable method for the Gaussian: the old
    # decision memo, keyed by the kernel's bytes alone, then ran the Gaussian's factors
    # for the integer kernel (relative error 1.7e19).
    x = np.random.default_rng(0).standard_normal((300, 300))
    g = np.exp(-np.arange(-7, 8) ** 2 / 8.0)
    w = np.outer(g, g)
    wi = w.view(np.int64)           # the same bytes as a (huge) integer kernel
    with fastconv.tuning("model"):
        assert fastconv.explain(x, w, "same").method == "separable"
        first = fastconv.convolve(x, w, "same")
        second = fastconv.convolve(x, wi, "same")
    np.testing.assert_allclose(first, ss.convolve(x, w, "same"), atol=1e-12)
    want = ss.convolve(x, wi.astype(np.float64), "same")
    np.testing.assert_allclose(second, want, atol=1e-12 * np.abs(want).max())


def test_memos_are_bounded():
    lru = _memo.LRU(3)
    for i in range(10):
        lru.put(i, str(i))
    assert len(lru) == 3 and lru.get(0) is None and lru.get(9) == "9"
    lru.get(7)
    lru.put(10, "10")                 # 8 was the least recently used
    assert lru.get(8) is None and lru.get(7) == "7"
    assert tuner._MEMO.size <= 4096 and tuner._HOT.size <= 4096
    x = np.ones(50)
    for k in range(1, 40):
        fastconv.convolve(x, np.ones(k), "same")
    assert len(tuner._HOT) <= tuner._HOT.size


def test_scratch_buffers_go_with_their_thread():
    import gc

    from fastconv.kernels.cpu import _chunks

    seen = []

    def work():
        _chunks.scratch("test", (1000,), np.float64)
        seen.extend(b for b in _chunks._ALL_SCRATCH if "test" in b)
    t = threading.Thread(target=work)
    t.start()
    t.join()
    assert len(seen) == 1          # the thread's buffers were registered ...
    del t
    seen.clear()
    gc.collect()
    assert all("test" not in b for b in _chunks._ALL_SCRATCH)   # ... and left with it


def test_tuning_mode_from_code():
    before = fastconv.get_tuning()
    x = np.ones((64, 64), np.float32)
    w = np.ones((5, 5), np.float32)
    with fastconv.tuning("off"):
        assert fastconv.get_tuning() == "off"
        d = fastconv.explain(x, w, "same")
        assert d.tune == "off" and "tuning: off" in str(d)
        seen = []
        t = threading.Thread(target=lambda: seen.append(fastconv.get_tuning()))
        t.start()
        t.join()
        assert seen == [before]       # a with-block holds for its own thread only
    assert fastconv.get_tuning() == before
    old = fastconv.set_tuning("model")
    try:
        assert old == before and fastconv.get_tuning() == "model"
        assert fastconv.explain(x, w, "same").tune == "model"
    finally:
        fastconv.set_tuning(old)
    with pytest.raises(ValueError, match="tuning mode"):
        fastconv.set_tuning("fast")
    with pytest.raises(TypeError, match="tuning mode"):
        fastconv.tuning(3).__enter__()
    assert _config.get().tune == before


def test_decisions_carry_the_device():
    x = np.ones((32, 32))
    w = np.ones((3, 3))
    d = fastconv.explain(x, w)
    assert d.device == "cpu" and "on cpu" in str(d)
    assert d.key.split("|")[10] == "cpu"


class _FakeGpuArray:
    """What a CuPy array or a torch CUDA tensor shows NumPy: a CUDA array interface."""
    __cuda_array_interface__ = {"shape": (4,), "typestr": "<f4", "data": (0, False),
                                "version": 3}
    shape = (4,)


class _FakeDlpackGpu:
    def __dlpack_device__(self):
        return (2, 0)             # kDLCUDA


@pytest.mark.parametrize("arr", [_FakeGpuArray(), _FakeDlpackGpu()])
def test_gpu_arrays_are_refused_clearly(arr):
    assert _arrays.array_kind(arr) == "cuda"
    with pytest.raises(TypeError, match="in1 is a GPU array"):
        fastconv.convolve(arr, np.ones(3))
    with pytest.raises(TypeError, match="in2 is a GPU array"):
        fastconv.correlate(np.ones(5), arr)


def test_array_kinds():
    assert _arrays.array_kind(np.ones(3)) == "numpy"
    assert _arrays.array_kind([1, 2, 3]) == "numpy"
    assert _arrays.device_of("numpy") == "cpu"


def test_ndimage_integer_output_stays_exact_through_the_dispatcher():
    x = np.arange(100, dtype=np.int32).reshape(10, 10) * 1000
    w = np.arange(9, dtype=np.int32).reshape(3, 3)
    np.testing.assert_array_equal(fnd.correlate(x, w), sndi.correlate(x, w))
