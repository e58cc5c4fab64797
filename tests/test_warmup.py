"""``python -m fastconv warmup`` and the ``compiled`` line of ``info``.

One warm-up (float32, rank 1) into a fresh NUMBA_CACHE_DIR in a subprocess; a second
subprocess then checks that its first calls load every kernel they run from that cache
(numba's per-dispatcher cache statistics: hits, no misses) instead of compiling.
"""
import json
import os
import subprocess
import sys
import textwrap

import pytest

from fastconv import _warmup
from fastconv.__main__ import main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(args, cache, timeout=240):
    env = dict(os.environ, PYTHONPATH=ROOT, NUMBA_CACHE_DIR=str(cache))
    return subprocess.run([sys.executable] + args, cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


# Calls a rank-1 float32 user makes, then every kernel dispatcher's cache statistics.
_SECOND = textwrap.dedent("""
    import json
    import numpy as np
    import fastconv
    from fastconv import ndimage, nn, _jit
    rng = np.random.default_rng(1)
    x = rng.standard_normal(200_000).astype(np.float32)
    w = rng.standard_normal(5).astype(np.float32)
    fastconv.convolve(x, w, "same", method="direct")           # parallel kernel
    fastconv.convolve(x[:50], w, "same", method="direct")      # small-work kernel
    with fastconv.threads(1):
        fastconv.convolve(x, w, "same", method="direct")       # serial twin
    ndimage.correlate1d(x, w, mode="nearest")
    ndimage.uniform_filter1d(x[:300], 4)
    wl = rng.standard_normal((8, 3, 3)).astype(np.float32)
    for n_in in (2000, 40):                                    # parallel, then serial
        nn.conv1d(rng.standard_normal((2, 3, n_in)).astype(np.float32), wl, padding=1,
                  method="direct")
    from numba.core.registry import CPUDispatcher
    import fastconv.kernels.cpu.direct as d, fastconv.kernels.cpu.filters1d as f
    import fastconv.kernels.cpu.nn as n, fastconv.kernels.cpu._nn_tiles as t
    stats = {}
    for mod in (d, f, n, t):
        for name, obj in vars(mod).items():
            for disp in (obj, getattr(obj, "_fastconv_twin", None)):
                if isinstance(disp, CPUDispatcher) and disp.signatures:
                    s = disp.stats
                    stats[disp.py_func.__qualname__] = [sum(s.cache_hits.values()),
                                                        sum(s.cache_misses.values())]
    print(json.dumps(stats))
""")


def test_warmup_fills_the_cache_that_the_next_process_loads(tmp_path):
    cache = tmp_path / "numba-cache"
    first = _run(["-m", "fastconv", "warmup", "--dtypes", "float32", "--ranks", "1"], cache)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "] " in first.stderr and "done" in first.stderr        # the progress bar
    assert "float32 ranks 1" in first.stdout
    # numba's index files, one per cached function, for each kernel family
    names = [f for d in cache.iterdir() for f in os.listdir(d) if f.endswith(".nbi")]
    for family in ("direct._corr3d-", "direct._corr3d__serial", "direct._corr3d_small-",
                   "filters1d.",
                   "nn._direct_kernel-", "_nn_tiles.tiled_32x3-", "_nn_tiles.tiled_32x3__serial"):
        assert any(n.startswith(family) for n in names), (family, sorted(names))
    marker = [d / _warmup.MARKER for d in cache.iterdir() if (d / _warmup.MARKER).exists()]
    assert len(marker) == 1
    assert json.loads(marker[0].read_text())["dtypes"] == ["float32"]

    second = _run(["-c", _SECOND], cache)
    assert second.returncode == 0, second.stderr[-3000:]
    stats = json.loads(second.stdout.strip().splitlines()[-1])
    assert "_corr3d" in stats and "_corr3d__serial" in stats and "_corr3d_small" in stats
    assert "tiled_32x3" in stats
    for name, (hits, misses) in stats.items():
        assert misses == 0 and hits > 0, (name, hits, misses)

    info = _run(["-m", "fastconv", "info"], cache)
    assert info.returncode == 0, info.stderr[-3000:]
    line = next(l for l in info.stdout.splitlines() if l.strip().startswith("compiled:"))
    assert "warmed up for float32 ranks 1" in line and "direct" in line, line


def test_info_says_nothing_is_cached_in_an_empty_cache(tmp_path, monkeypatch, capsys):
    import numba
    monkeypatch.setattr(numba.config, "CACHE_DIR", str(tmp_path))
    assert _warmup.cached_index_files() == {}
    assert _warmup.status() == "nothing cached; no warmup run"
    marker = _warmup.marker_path()
    assert marker.startswith(str(tmp_path))
    with open(marker, "w") as f:
        json.dump({"fastconv": "0.0.1", "numba": numba.__version__, "dtypes": ["float64"],
                   "ranks": [2]}, f)
    assert "stale: run warmup again" in _warmup.status()


@pytest.mark.parametrize("argv, message", [
    (["warmup", "--dtypes", "int8"], "dtypes"),
    (["warmup", "--ranks", "4"], "ranks"),
    (["warmup", "--ranks", "two"], "--ranks"),
])
def test_warmup_rejects_unknown_dtypes_and_ranks(argv, message):
    with pytest.raises(SystemExit, match=message):
        main(argv)
