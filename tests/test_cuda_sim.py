"""Runs the CUDA kernel tests (tests/cuda) under Numba's CUDA simulator, so that the
README's single ``python -m pytest -n 2`` covers them: the simulator must be switched on
before numba is first imported, which this process has long done, so they run in a
subprocess with NUMBA_ENABLE_CUDASIM=1. Fails with that run's output if it fails."""
import importlib.util
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.cuda

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


@pytest.mark.skipif(importlib.util.find_spec("numba_cuda") is None,
                    reason="numba-cuda is not installed (the fastconv[cuda] extra)")
def test_cuda_kernels_under_the_simulator():
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    env.pop("FASTCONV_TEST_GPU", None)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", os.path.join(HERE, "cuda"), "-q",
         "-p", "no:cacheprovider", "-p", "no:randomly", "-x"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)
    if proc.returncode != 0:
        pytest.fail("tests/cuda under NUMBA_ENABLE_CUDASIM=1 failed:\n"
                    + proc.stdout[-12000:] + proc.stderr[-4000:], pytrace=False)


def test_registry_and_device_table_import_no_cuda():
    """The cuda registry rows and DEVICES["cuda"] are names, loaded on first use:
    importing fastconv.kernels (and asking for the CPU) never imports numba-cuda."""
    code = ("import sys, fastconv.kernels as k; k.methods('correlate', 'cuda'); "
            "k.device_sync('cpu'); "
            "bad = [m for m in sys.modules if m.startswith(('numba.cuda', 'numba_cuda.'))]; "
            "assert not bad, bad")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
