"""``import fastconv`` stays light: numba, llvmlite and scipy load on first use, and the
threading-layer choice still happens before the first parallel region."""
import json
import os
import subprocess
import sys
import textwrap

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(code, **env):
    env = dict(os.environ, PYTHONPATH=ROOT, **env)
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
