"""fastconv in child processes, and the serial twins of the parallel kernels.

A process forked after fastconv ran a parallel kernel under GNU OpenMP used to die at its
first parallel region ("Terminating: fork() called from a process already using GNU
OpenMP"), leaving multiprocessing's Pool.map waiting forever. Each pool scenario runs in
its own interpreter under a deadline, so that a regression fails here instead of hanging
the test run.
"""
import multiprocessing as mp
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numba
import numpy as np
import pytest

import fastconv
from fastconv import _jit
from fastconv.kernels.cpu import _chunks, direct

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = Path(__file__).with_name("_fork_scenario.py")
# The scenario compiles a dozen kernels when numba's cache is cold (about a minute on a
# busy 2-core machine) and gives its pool WORKER_TIMEOUT_S; this is the backstop.
DEADLINE_S = 600


def _run_scenario(method):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    try:
        return subprocess.run([sys.executable, str(SCENARIO), method], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=DEADLINE_S)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{method}: no result within {DEADLINE_S} s\n{exc.stdout}\n{exc.stderr}")


@pytest.mark.parametrize("method", ["fork", "forkserver", "spawn"])
def test_pool_workers_after_parallel_use_in_parent(method):
    if method not in mp.get_all_start_methods():
        pytest.skip(f"no {method} start method on this platform")
    r = _run_scenario(method)
    assert r.returncode == 0 and r.stdout.strip().endswith("OK"), (
        f"exit {r.returncode}\nstdout:\n{r.stdout}\nstderr:\n{r.stderr[-4000:]}")


def test_small_work_and_one_thread_run_serially(monkeypatch):
    top = numba.config.NUMBA_NUM_THREADS
    if top < 2:
        pytest.skip("one thread only")
    monkeypatch.setattr(_jit, "_contended_until", 0.0)      # no stall seen (tested below)
    monkeypatch.setattr(_jit, "_last_stall", -1e9)
    with fastconv.threads(top):
        assert _jit.runs_serial(0)
        assert _jit.runs_serial(_jit.LAUNCH_WORK)          # below the break-even
        assert not _jit.runs_serial(4 * _jit.LAUNCH_WORK)
        assert not _jit.runs_serial(None)                   # unknown work: parallel
    with fastconv.threads(1):
        assert _jit.runs_serial(10**12)
        assert _jit.runs_serial(None)


def test_stalled_regions_send_medium_work_to_one_thread(monkeypatch):
    # Two stalled parallel regions within STALL_WINDOW_S (another process held the cores:
    # a 0.2 ms region took 7 ms) mark the process contended: medium work then runs on the
    # calling thread for CONTENDED_S, doubling per stall in a row; large work and
    # unknown work stay parallel; a region that ran normally resets the backoff.
    top = numba.config.NUMBA_NUM_THREADS
    if top < 2:
        pytest.skip("one thread only")
    now = [1000.0]
    monkeypatch.setattr(_jit.time, "perf_counter", lambda: now[0])
    monkeypatch.setattr(_jit, "_contended_until", 0.0)
    monkeypatch.setattr(_jit, "_last_stall", -1e9)
    monkeypatch.setattr(_jit, "_backoff", _jit.CONTENDED_S)
    monkeypatch.setattr(_jit, "_best_rate", {})
    kernel = object()
    medium = 4 * _jit.LAUNCH_WORK
    with fastconv.threads(top):
        assert not _jit.note_region(kernel, medium, 200e-6)    # sets the best rate
        assert not _jit.runs_serial(medium)
        assert _jit.note_region(kernel, medium, 7e-3)          # one stall: a hiccup
        assert not _jit.runs_serial(medium) and not _jit.contended()
        now[0] += 0.3
        assert _jit.note_region(kernel, medium, 7e-3)          # a second within the window
        assert _jit.contended() and _jit.runs_serial(medium)
        assert not _jit.runs_serial(_jit.CONTENDED_WORK)       # large work stays parallel
        assert not _jit.runs_serial(None)
        now[0] += _jit.CONTENDED_S + 0.01                     # the while is over
        assert not _jit.runs_serial(medium)
        assert _jit.note_region(kernel, medium, 7e-3)          # stalls again, in a row:
        assert _jit.runs_serial(medium)                        # twice as long now
        now[0] += _jit.CONTENDED_S + 0.01
        assert _jit.runs_serial(medium)
        now[0] += _jit.CONTENDED_S
        assert not _jit.runs_serial(medium)
        assert not _jit.note_region(kernel, medium, 210e-6)    # normal: backoff resets
        assert _jit._backoff == _jit.CONTENDED_S


def test_serial_twin_is_a_separately_cached_function():
    twin = _jit.serial_twin(direct._corr3d)
    assert twin is _jit.serial_twin(direct._corr3d)        # built once
    assert twin is not direct._corr3d
    assert twin.py_func.__qualname__ != direct._corr3d.py_func.__qualname__
    assert not twin.targetoptions.get("parallel")
    assert direct._corr3d.targetoptions.get("parallel")


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
def test_serial_twin_gives_the_parallel_result(dtype):
    rng = np.random.default_rng(1)
    x = (rng.standard_normal((96, 130)) * 100).astype(dtype)
    w = (rng.standard_normal((4, 5)) * 10).astype(dtype)
    parallel = fastconv.convolve(x, w, method="direct")
    with fastconv.threads(1):
        serial = fastconv.convolve(x, w, method="direct")
    np.testing.assert_array_equal(serial, parallel)


def test_forked_child_gets_a_fresh_chunk_pool():
    # The parent's ThreadPoolExecutor has no worker threads in a forked child: work
    # submitted to it would never run. The at-fork handler drops it.
    _chunks.run_chunks(lambda c: None, range(4), 2)
    assert _chunks._POOL is not None or not _chunks.parallel_available()
    with warnings.catch_warnings():     # 3.12+: "process is multi-threaded" (numba's pool)
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:                                            # child: report through exit code
        os._exit(0 if _chunks._POOL is None else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
