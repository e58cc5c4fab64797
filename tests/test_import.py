"""``import fastconv`` stays light: numba, llvmlite and scipy load on first use, and the
threading-layer choice still happens before the first parallel region."""
import json
import os
import subprocess
import sys
import textwrap

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(code, **env):
    base = dict(os.environ)
    if "NUMBA_NUM_THREADS" not in env:
        base.pop("NUMBA_NUM_THREADS", None)
    env = dict(base, PYTHONPATH=ROOT, **env)
    env.pop("NUMBA_THREADING_LAYER", None)
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_import_fastconv_loads_no_numba_or_scipy():
    out = _run("""
        import json, sys
        import fastconv
        heavy = sorted(m for m in sys.modules
                       if m.split(".")[0] in ("numba", "llvmlite", "scipy", "torch", "cv2")
                       or m.startswith("fastconv.kernels.") or m == "fastconv._jit")
        print(json.dumps(heavy))
    """)
    assert out == []


def test_thread_settings_before_any_kernel_choose_the_layer_first():
    # fastconv.threads / get_num_threads start numba's thread pool: _jit must have set
    # the thread-safe layer request by then, as the eager import did.
    out = _run("""
        import json
        import numpy as np
        import fastconv
        n = fastconv.get_num_threads()
        with fastconv.threads(1):
            pass
        import numba
        requested = numba.config.THREADING_LAYER
        fastconv.convolve(np.ones(300_000), np.ones(5), "same", method="direct")
        print(json.dumps([n, requested, numba.threading_layer()]))
    """)
    assert out[0] >= 1
    assert out[1] == "threadsafe"
    assert out[2] in ("tbb", "omp")


def test_tuner_fingerprint_is_the_same_with_lazy_and_eager_imports():
    code = """
        import json
        {first}
        from fastconv.tuner._key import fingerprint
        print(json.dumps(fingerprint()))
    """
    lazy = _run(code.format(first="import fastconv"))
    eager = _run(code.format(first="import fastconv._jit, fastconv.kernels.cpu.direct"))
    assert lazy == eager
    assert lazy["threading_layer"].startswith("threadsafe")


def test_a_first_tier_filter_call_loads_neither_scipy_ndimage_nor_numba(tmp_path):
    # The tier's separable passes are NumPy (scipy.ndimage's import alone is 0.3 s): a
    # first gaussian_filter / uniform_filter / sobel call loads neither scipy.ndimage nor
    # numba. (The background compile is switched off here; it runs in another process.)
    out = _run("""
        import json, sys
        import numpy as np
        import fastconv
        from fastconv import _config, _firstcall
        _firstcall._enqueue = lambda cls, payload: None
        x = np.random.default_rng(0).standard_normal((96, 80)).astype(np.float32)
        with _config.override(first_call="tier"):
            r = [fastconv.ndimage.gaussian_filter(x, 2.0),
                 fastconv.ndimage.uniform_filter(x, 5, mode="constant"),
                 fastconv.ndimage.sobel(x.astype(np.float64))]
        loaded = sorted(m for m in ("scipy.ndimage", "numba") if m in sys.modules)
        import scipy.ndimage as nd
        same = [r[0].tobytes() == nd.gaussian_filter(x, 2.0).tobytes(),
                r[1].tobytes() == nd.uniform_filter(x, 5, mode="constant").tobytes(),
                r[2].tobytes() == nd.sobel(x.astype(np.float64)).tobytes()]
        print(json.dumps([loaded, same]))
    """, FASTCONV_CACHE_DIR=str(tmp_path))
    assert out == [[], [True, True, True]]


def test_fftconvolve_and_oaconvolve_load_no_numba():
    # The FFT launchers need numba only for their direct fallbacks; their thread count
    # comes from _fftsize.fft_workers without it.
    out = _run("""
        import json, sys
        import numpy as np
        import fastconv
        rng = np.random.default_rng(1)
        x, w = rng.standard_normal((300, 200)), rng.standard_normal((5, 7))
        s, k = rng.standard_normal(5000).astype(np.float32), np.ones(33, np.float32)
        r = [fastconv.fftconvolve(x, w, "same"), fastconv.oaconvolve(s, k),
             fastconv.fftconvolve(np.arange(50), np.arange(4), "valid")]
        loaded = "numba" in sys.modules
        import scipy.signal as ss
        ref = [ss.fftconvolve(x, w, "same"), ss.oaconvolve(s, k),
               ss.fftconvolve(np.arange(50), np.arange(4), "valid")]
        print(json.dumps([loaded] + [bool(np.allclose(a, b, rtol=1e-5, atol=1e-4))
                                     for a, b in zip(r, ref)]))
    """)
    assert out == [False, True, True, True]


def test_fft_workers_without_numba_is_numbas_thread_count():
    code = """
        import json
        from fastconv._fftsize import fft_workers
        before = fft_workers()
        import fastconv
        import numba
        after, nb = fastconv.get_num_threads(), numba.get_num_threads()
        fastconv.set_num_threads(1)
        print(json.dumps([before, after, nb, fft_workers()]))
    """
    for env in ({}, {"NUMBA_NUM_THREADS": "1"}):
        before, after, nb, one = _run(code, **env)
        assert before == after == nb
        assert one == 1
