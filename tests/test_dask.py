"""The Dask engine: lazy dask arrays out, the NumPy path's results, on a LocalCluster.

References: the NumPy path (bit for bit where the same method runs: method='direct' and
the ndimage filters), scipy.signal / scipy.ndimage, and a naive float64 loop.
"""
import os
import tracemalloc

import numpy as np
import pytest
import scipy.ndimage as sndi
import scipy.signal as ss

da = pytest.importorskip("dask.array")
dask = pytest.importorskip("dask")
distributed = pytest.importorskip("distributed")

import fastconv  # noqa: E402
from fastconv import ndimage as fnd  # noqa: E402
from fastconv import tuner  # noqa: E402
from fastconv.engines import dask as engine  # noqa: E402

from reference import correlate_ref  # noqa: E402


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(processes=False, n_workers=1, threads_per_worker=2,
                                       dashboard_address=":0")
    c = distributed.Client(cluster)
    yield c
    c.close()
    cluster.close()


RNG = np.random.default_rng(13)
X2 = RNG.standard_normal((37, 29))
W2 = RNG.standard_normal((5, 4))
UNEVEN = ((7, 11, 2, 17), (3, 9, 9, 8))         # chunks that do not divide the shape


def _lazy(a, chunks=UNEVEN):
    return da.from_array(a, chunks=chunks)


@pytest.mark.parametrize("mode", ["full", "same", "valid"])
@pytest.mark.parametrize("boundary", ["fill", "wrap", "symm", "mirror", "nearest"])
@pytest.mark.parametrize("op", ["convolve", "correlate"])
def test_signal_equals_numpy_path_bit_for_bit(client, op, mode, boundary):
    f = getattr(fastconv, op)
    kw = dict(boundary=boundary, fillvalue=1.5 if boundary == "fill" else 0)
    got = f(_lazy(X2), W2, mode, method="direct", **kw)
    assert isinstance(got, da.Array)
    want = f(X2, W2, mode, method="direct", **kw)
    assert got.shape == want.shape and got.dtype == want.dtype
    _same(got.compute(), want, boundary)


def _same(got, want, boundary):
    """Bit for bit, except 'wrap': a block at the edge gets the far samples gathered into
    its piece and sums them in the interior order (last bits)."""
    if boundary in ("wrap", "grid-wrap"):
        np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-13)
    else:
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("mode", ["full", "same", "valid"])
@pytest.mark.parametrize("boundary", ["fill", "wrap", "symm"])
@pytest.mark.parametrize("op", ["convolve2d", "correlate2d"])
def test_2d_drop_ins_equal_scipy(client, op, mode, boundary):
    got = getattr(fastconv, op)(_lazy(X2), W2, mode, boundary, 0.5)
    want = getattr(ss, op)(X2, W2, mode, boundary, 0.5)
    assert got.shape == want.shape
    np.testing.assert_allclose(got.compute(), want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("mode", ["full", "same", "valid"])
@pytest.mark.parametrize("f", ["fftconvolve", "oaconvolve"])
def test_fft_drop_ins_equal_scipy(client, f, mode):
    got = getattr(fastconv, f)(_lazy(X2), W2, mode)
    np.testing.assert_allclose(got.compute(), getattr(ss, f)(X2, W2, mode), rtol=1e-12,
                               atol=1e-12)


def test_fftconvolve_axes_pair_the_batch_axis_per_block(client):
    x = RNG.standard_normal((6, 40))
    w = RNG.standard_normal((6, 7))         # axis 0 pairs elementwise (equal lengths)
    got = fastconv.fftconvolve(da.from_array(x, chunks=(4, 9)), w, "same", axes=1)
    np.testing.assert_allclose(got.compute(), ss.fftconvolve(x, w, "same", axes=1),
                               atol=1e-12)


def test_chunks_smaller_than_the_halo(client):
    x = RNG.standard_normal((13, 14))
    w = RNG.standard_normal((7, 8))             # halo 6 x 7 over chunks of 2 x 3
    for boundary in ("fill", "wrap", "symm", "mirror", "nearest"):
        got = fastconv.correlate(da.from_array(x, chunks=(2, 3)), w, "same",
                                 method="direct", boundary=boundary)
        _same(got.compute(), fastconv.correlate(x, w, "same", method="direct",
                                                boundary=boundary), boundary)
    got = fnd.gaussian_filter(da.from_array(x, chunks=(2, 3)), 3, mode="wrap")
    np.testing.assert_array_equal(got.compute(), fnd.gaussian_filter(x, 3, mode="wrap"))


@pytest.mark.parametrize("method", ["auto", "fft", "oa"])
def test_kernel_larger_than_a_chunk(client, method):
    x = RNG.standard_normal((64, 70))
    w = RNG.standard_normal((25, 31))           # larger than the 16 x 16 chunks
    got = fastconv.convolve(da.from_array(x, chunks=16), w, "same", method=method)
    want = correlate_ref(x, w[::-1, ::-1], start=(-12, -15),
                                  out_shape=x.shape)
    np.testing.assert_allclose(got.compute(), want, rtol=1e-10, atol=1e-10)


def test_integers_exact(client):
    x = RNG.integers(-30000, 30000, (40, 33)).astype(np.int16)
    w = RNG.integers(-100, 100, (6, 5)).astype(np.int16)
    for mode in ("full", "same", "valid"):
        got = fastconv.convolve(_lazy(x, (9, 8)), w, mode)
        want = ss.convolve(x, w, mode, method="direct")
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got.compute(), want)
    big = RNG.integers(-2**40, 2**40, (40, 33))       # beyond the FFT exactness bound
    got = fastconv.convolve(_lazy(big, (9, 8)), w.astype(np.int64), "same")
    np.testing.assert_array_equal(got.compute(), ss.convolve(big, w.astype(np.int64),
                                                             "same", method="direct"))


def test_float32_stays_float32(client):
    x = X2.astype(np.float32)
    assert fastconv.convolve(_lazy(x), W2.astype(np.float32), "same").dtype == np.float32
    got = fnd.gaussian_filter(_lazy(x), 2)
    assert got.dtype == np.float32 and got.compute().dtype == np.float32
    np.testing.assert_array_equal(got.compute(), fnd.gaussian_filter(x, 2))


ND_CALLS = {
    "gaussian_filter": (fnd.gaussian_filter, (1.5,), {}),
    "gaussian_filter order": (fnd.gaussian_filter, ((1.0, 2.0),), dict(order=(1, 0))),
    "gaussian_filter1d": (fnd.gaussian_filter1d, (2.0,), dict(axis=0)),
    "uniform_filter": (fnd.uniform_filter, ((3, 6),), dict(origin=(1, -2))),
    "uniform_filter1d": (fnd.uniform_filter1d, (5,), dict(axis=1, origin=1)),
    "correlate": (fnd.correlate, (W2,), dict(origin=(1, -1))),
    "convolve": (fnd.convolve, (W2,), dict(origin=(-2, 1))),
    "correlate1d": (fnd.correlate1d, (W2[0],), dict(axis=0, origin=-1)),
    "convolve1d": (fnd.convolve1d, (W2[1],), dict(axis=1)),
    "sobel": (fnd.sobel, (), dict(axis=0)),
    "prewitt": (fnd.prewitt, (), {}),
    "laplace": (fnd.laplace, (), {}),
    "gaussian_laplace": (fnd.gaussian_laplace, (1.2,), {}),
    "gaussian_gradient_magnitude": (fnd.gaussian_gradient_magnitude, (1.2,), {}),
}
ND_MODES = ["reflect", "mirror", "nearest", "wrap", "constant"]


@pytest.mark.parametrize("mode", ND_MODES)
@pytest.mark.parametrize("name", sorted(ND_CALLS))
def test_ndimage_filters_equal_numpy_path(client, name, mode):
    f, args, kw = ND_CALLS[name]
    kw = dict(kw, mode=mode, cval=0.75)
    got = f(_lazy(X2), *args, **kw)
    assert isinstance(got, da.Array)
    want = f(X2, *args, **kw)
    assert got.dtype == want.dtype
    # Running sums (uniform filters) start at each block: last-bit differences only.
    # and 'wrap' at edge blocks of the N-d correlations (see _same): last bits only.
    tol = (dict(rtol=1e-13, atol=1e-13) if "uniform" in name or mode == "wrap"
           else dict(rtol=0, atol=0))
    np.testing.assert_allclose(got.compute(), want, **tol)
    np.testing.assert_allclose(want, getattr(sndi, f.__name__)(X2, *args, **kw),
                               rtol=1e-12, atol=1e-12)


def test_ndimage_integer_output_exact(client):
    x = RNG.integers(0, 255, (37, 29)).astype(np.uint8)
    for f, args in ((fnd.gaussian_filter, (1.7,)), (fnd.sobel, ()),
                    (fnd.correlate, (np.arange(9).reshape(3, 3),))):
        got = f(_lazy(x), *args)
        assert got.dtype == np.uint8
        np.testing.assert_array_equal(got.compute(), getattr(sndi, f.__name__)(x, *args))


def test_ndimage_output_array_is_refused(client):
    with pytest.raises(TypeError, match="output"):
        fnd.gaussian_filter(_lazy(X2), 1, output=np.empty_like(X2))


def test_errors_are_the_numpy_paths(client):
    with pytest.raises(ValueError, match="Acceptable mode flags"):
        fastconv.convolve(_lazy(X2), W2, "bad")
    with pytest.raises(ValueError, match="same dimensionality"):
        fastconv.convolve(_lazy(X2), W2[0])
    with pytest.raises(RuntimeError, match="boundary mode not supported"):
        fnd.gaussian_filter(_lazy(X2), 1, mode="bad")


_SEEN = []          # module-level: the task function is pickled by reference


def _count(block):
    _SEEN.append(block.shape)
    return block


def test_lazy_until_compute(client):
    _SEEN.clear()
    x = _lazy(X2).map_blocks(_count, dtype=X2.dtype, meta=np.empty((0, 0)))
    results = [fastconv.convolve(x, W2, "same"), fastconv.fftconvolve(x, W2),
               fastconv.convolve2d(x, W2, boundary="wrap"),
               fnd.gaussian_filter(x, 2), fnd.correlate(x, W2)]
    assert _SEEN == [] and all(isinstance(r, da.Array) for r in results)
    results[0].compute()
    assert _SEEN
    # Computed together, the graphs share only identical halo tasks.
    got = dask.compute(*results)
    np.testing.assert_array_equal(got[3], fnd.gaussian_filter(X2, 2))
    np.testing.assert_allclose(got[4], sndi.correlate(X2, W2), atol=1e-12)
    np.testing.assert_allclose(got[2], ss.convolve2d(X2, W2, boundary="wrap"), atol=1e-12)


def test_tasks_never_decide(client, monkeypatch):
    """The decisions are made while the graph is built; computing it asks the tuner
    nothing (so no worker measures)."""
    x = RNG.standard_normal((80, 90))
    with fastconv.tuning("measure"):
        lazy = [fastconv.convolve(da.from_array(x, chunks=(30, 25)), W2, "same"),
                fnd.correlate(da.from_array(x, chunks=(30, 25)), W2)]
    calls = []
    real = tuner.decide
    monkeypatch.setattr(tuner, "decide", lambda *a, **k: calls.append(1) or real(*a, **k))
    with fastconv.tuning("measure"):
        got = [r.compute() for r in lazy]
    assert calls == []
    np.testing.assert_allclose(got[0], ss.convolve(x, W2, "same"), atol=1e-12)
    np.testing.assert_allclose(got[1], sndi.correlate(x, W2), atol=1e-12)


def test_thread_budget(client):
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert engine.task_threads() == max(1, cores // 2)       # 1 worker x 2 task threads
    assert engine._cluster_key_threads(
        (("a", "h1", 2), ("b", "h1", 2), ("c", "h2", 1)), (("h1", 8), ("h2", 4))) == 2


def test_dask_kernel_and_numpy_data(client):
    got = fastconv.convolve(X2, da.from_array(W2, chunks=2), "same")
    assert isinstance(got, da.Array)
    np.testing.assert_allclose(got.compute(), ss.convolve(X2, W2, "same"), atol=1e-12)
    # 'valid' with the dask array as the smaller operand: one task, scipy's swap.
    got = fastconv.correlate(_lazy(W2, 2), X2, "valid")
    np.testing.assert_allclose(got.compute(), ss.correlate(W2, X2, "valid"), atol=1e-12)


def test_one_dimensional_and_three_dimensional(client):
    s = RNG.standard_normal(1000)
    k = RNG.standard_normal(101)
    got = fastconv.convolve(da.from_array(s, chunks=77), k, "full")
    np.testing.assert_allclose(got.compute(), ss.convolve(s, k), atol=1e-10)
    v = RNG.standard_normal((12, 13, 14)).astype(np.float32)
    got = fnd.gaussian_filter(da.from_array(v, chunks=5), 1.0, mode="wrap")
    np.testing.assert_array_equal(got.compute(), fnd.gaussian_filter(v, 1.0, mode="wrap"))


def test_processes_cluster():
    """One small run on worker processes: the graph's functions pickle by reference."""
    with distributed.LocalCluster(processes=True, n_workers=1, threads_per_worker=1,
                                  dashboard_address=":0") as cluster, \
            distributed.Client(cluster) as c:
        x = RNG.standard_normal((40, 30)).astype(np.float32)
        a = fastconv.convolve(da.from_array(x, chunks=16), W2.astype(np.float32), "same")
        b = fnd.gaussian_filter(da.from_array(x, chunks=16), 1.5, mode="wrap")
        ra, rb = c.compute([a, b], sync=True)
        np.testing.assert_allclose(ra, ss.convolve(x, W2.astype(np.float32), "same"),
                                   rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(rb, fnd.gaussian_filter(x, 1.5, mode="wrap"))


def _tier_state():
    from fastconv import _firstcall
    return _firstcall.served(), _firstcall.pending()


def test_worker_runs_compiled_kernels_from_its_first_block(monkeypatch):
    """Workers are fresh processes whose default first-call mode is the no-compile tier
    (``_firstcall.py``): without the engine's compile mode every block ran NumPy passes
    and every worker started its own background compile. Here the client builds the
    graphs in tier mode too: no call of the client or of the worker is served by the tier,
    no compile process is started, and the results are the compiled path's."""
    from fastconv import _config, _firstcall
    monkeypatch.setenv("FASTCONV_FIRST_CALL", "tier")      # the worker processes' default
    x = RNG.standard_normal((40, 30)).astype(np.float32)
    w = W2.astype(np.float32)
    served = _firstcall.served()
    with distributed.LocalCluster(processes=True, n_workers=1, threads_per_worker=1,
                                  dashboard_address=":0") as cluster, \
            distributed.Client(cluster) as c:
        with _config.override(first_call="tier"):
            a = fastconv.convolve(da.from_array(x, chunks=16), w, "same")
            b = fnd.gaussian_filter(da.from_array(x, chunks=16), 1.5, mode="wrap")
            d = fnd.convolve(da.from_array(x, chunks=16), w)
        assert _firstcall.served() == served         # the client decided compiled methods
        ra, rb, rd = c.compute([a, b, d], sync=True)
        (worker_served, worker_pending), = c.run(_tier_state).values()
    assert worker_served == 0 and worker_pending == ()
    np.testing.assert_allclose(ra, ss.convolve(x, w, "same"), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(rb, fnd.gaussian_filter(x, 1.5, mode="wrap"))
    np.testing.assert_array_equal(rd, fnd.convolve(x, w))


def test_out_of_core_zarr_chunk_by_chunk(tmp_path):
    """A 64 MiB zarr array filtered and written back to zarr chunk by chunk: the peak of
    NumPy allocations (tracemalloc counts them) stays below a third of the array, on 2
    scheduler threads. A tall array keeps the band of chunks that the halos and Dask's
    read-ahead hold (~14 MiB here, as much as for ``x + 1``) well below the array."""
    zarr = pytest.importorskip("zarr")
    n, m, c = 16384, 1024, 256
    src = zarr.open_array(str(tmp_path / "in.zarr"), mode="w", shape=(n, m),
                          chunks=(c, c), dtype="f4")
    for i in range(0, n, c):                          # written a band at a time
        src[i:i + c] = np.random.default_rng(i).standard_normal((c, m), np.float32)
    x = da.from_zarr(str(tmp_path / "in.zarr"))
    y = fnd.gaussian_filter(x, 2.0)
    with dask.config.set(scheduler="threads", num_workers=2):
        tracemalloc.start()
        try:
            da.to_zarr(y, str(tmp_path / "out.zarr"))
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert peak < n * m * 4 / 3, f"peak {peak / 2**20:.1f} MiB"
    out = zarr.open_array(str(tmp_path / "out.zarr"), mode="r")
    for i, j in ((0, 0), (4096, 512), (n - c, m - c)):
        lo_i, lo_j = max(i - 16, 0), max(j - 16, 0)
        part = np.asarray(src[lo_i:i + c + 16, lo_j:j + c + 16])
        want = sndi.gaussian_filter(part, 2.0)[i - lo_i:i - lo_i + c, j - lo_j:j - lo_j + c]
        np.testing.assert_allclose(out[i:i + c, j:j + c], want, rtol=1e-5, atol=1e-5)


class _FakeGpuChunk:
    """Stands in for a CuPy chunk type: a Dask array whose meta is not a NumPy array."""
    ndim, shape, dtype = 2, (0, 0), np.dtype(np.float64)


def test_non_numpy_chunks_are_refused(client):
    x = _lazy(X2)
    x._meta = _FakeGpuChunk()
    with pytest.raises(TypeError, match="in1 is a Dask array of"):
        fastconv.convolve(x, W2)
    with pytest.raises(TypeError, match="input is a Dask array of"):
        fnd.gaussian_filter(x, 1)


def _block_task_inputs(y, index):
    """The graph of ``y``, the key of its block ``index`` and that task's inputs, computed
    (so that the task itself can be run alone)."""
    import dask.core
    graph = dict(y.__dask_graph__())
    key = (y.name,) + index
    deps = sorted(dask.core.get_dependencies(graph, key), key=str)
    values = dask.get(graph, deps)
    return graph, key, dict(zip(deps, values))


_W5 = RNG.standard_normal((5, 5)).astype(np.float32)
_W31 = RNG.standard_normal((31, 31)).astype(np.float32)


@pytest.mark.parametrize("call, halo, bound", [
    (lambda x: fnd.gaussian_filter(x, 2.0), 8, 3),
    (lambda x: fnd.convolve(x, _W5), 2, 3),
    (lambda x: fastconv.convolve(x, _W5, "same"), 2, 3),
    (lambda x: fnd.convolve(x, _W31), 15, 4.5),
    (lambda x: fastconv.convolve(x, _W31, "same"), 15, 4.5),
], ids=["gaussian", "ndimage5x5", "signal5x5", "ndimage31x31", "signal31x31"])
def test_one_task_allocates_at_most_three_blocks(call, halo, bound):
    """The memory goal per task: one middle block's task (its inputs already computed:
    the chunk and its neighbours' edge strips) allocates at most 3 x (chunk + halo) bytes
    at its peak (tracemalloc counts NumPy's buffers): the gathered piece and the block's
    output, no float64 copy of float32 data, no piece-sized output for a block-sized
    result. A kernel the tuner gives an FFT adds the spectra (the piece's and the
    kernel's, each about the piece's size at this chunk size): 4.5 x."""
    c = 256
    x = RNG.standard_normal((3 * c, 3 * c)).astype(np.float32)
    y = call(da.from_array(x, chunks=c))
    graph, key, inputs = _block_task_inputs(y, (1, 1))
    alone = {**inputs, key: graph[key]}
    dask.get(alone, key)                                  # compiled, tuned, warm
    tracemalloc.start()
    try:
        got = dask.get(alone, key)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    unit = (c + 2 * halo) ** 2 * 4
    assert got.dtype == np.float32 and got.shape == (c, c)
    assert peak <= bound * unit, f"peak {peak / unit:.2f} x (chunk + halo)"


@pytest.mark.parametrize("mode", ["reflect", "mirror", "nearest", "wrap", "constant"])
@pytest.mark.parametrize("op", ["correlate", "convolve"])
def test_ndimage_origin_and_even_kernels_over_small_chunks(client, op, mode):
    """The exact halo before and after (from the spec, origin included) over chunks
    smaller than it, at every edge: the NumPy path's values."""
    x = RNG.standard_normal((23, 19))
    w = RNG.standard_normal((4, 5))
    for origin in ((0, 0), (1, -2), (-2, 2)):
        got = getattr(fnd, op)(da.from_array(x, chunks=(3, 2)), w, mode=mode, cval=0.5,
                               origin=origin)
        want = getattr(fnd, op)(x, w, mode=mode, cval=0.5, origin=origin)
        _same(got.compute(), want, mode)


def test_halo_strips_do_not_hold_their_chunks():
    """A halo is a copy of the strip it needs: a view would keep the whole neighbouring
    chunk in memory for as long as the strip lives (a chunk read from zarr could not be
    released after its own block is done)."""
    x = da.from_array(RNG.standard_normal((60, 50)).astype(np.float32), chunks=20)
    for y in (fnd.gaussian_filter(x, 1.0), fastconv.convolve(x, _W5, "same")):
        graph = dict(y.__dask_graph__())
        keys = [k for k in graph if not (isinstance(k, tuple) and k[0] in (y.name, x.name))
                and "kernel" not in str(k)]
        assert keys
        for value in dask.get(graph, keys):
            arrays = list(value.values()) if isinstance(value, dict) else [value]
            for a in arrays:
                assert isinstance(a, np.ndarray) and a.base is None and a.flags.c_contiguous


def test_pieces_gathered_into_the_worker_scratch_buffer():
    """Inside a worker a block's piece is gathered into the thread's reused buffer: the
    same array as np.block (1-D to 3-D, strips of any size), and the buffer grows to the
    largest piece."""
    rng = np.random.default_rng(5)
    for shapes in ([(3,), (7,), (2,)], [[(2, 3), (2, 4)], [(5, 3), (5, 4)]],
                   [[[(1, 2, 3), (1, 2, 1)], [(1, 4, 3), (1, 4, 1)]],
                    [[(3, 2, 3), (3, 2, 1)], [(3, 4, 3), (3, 4, 1)]]]):
        def make(s):
            return [make(t) for t in s] if isinstance(s, list) else \
                rng.standard_normal(s).astype(np.float32)
        pieces = make(shapes)
        got = engine._block_into_scratch(pieces)
        np.testing.assert_array_equal(got, np.block(pieces))
        assert np.shares_memory(got, engine._SCRATCH.buf)


def test_block_results_never_share_the_scratch_buffer(client):
    """Blocks computed later in the same worker thread do not change earlier results."""
    x = RNG.standard_normal((40, 30)).astype(np.float32)
    first = fnd.gaussian_filter(da.from_array(x, chunks=(16, 12)), 1.5).compute()
    second = fastconv.convolve(da.from_array(x[::-1].copy(), chunks=(16, 12)),
                               W2.astype(np.float32), "same").compute()
    np.testing.assert_array_equal(first, fnd.gaussian_filter(x, 1.5))
    assert not np.shares_memory(first, second)
    ys = dask.compute(*[fnd.uniform_filter(da.from_array(x + i, chunks=(16, 12)), 3)
                        for i in range(3)])
    for i, y in enumerate(ys):
        np.testing.assert_array_equal(y, fnd.uniform_filter(x + i, 3))


def test_bench_task_report_picks_the_block_tasks():
    """``cases_dask --tasks`` times the task prefix with the most compute time (the block
    tasks), not the getitem/edge/trim tasks around it."""
    cases = pytest.importorskip("fastconv.bench.cases_dask")

    def task(name, i, seconds, action="compute"):
        return {"key": (f"{name}-0123abcd", i, 0),
                "startstops": [{"action": "transfer", "start": 0.0, "stop": 5.0},
                               {"action": action, "start": 1.0, "stop": 1.0 + seconds}]}
    stream = ([task("fastconv-edges", i, 0.001) for i in range(9)]
              + [task("fastconv-filter", i, 0.02 + i * 0.001) for i in range(4)]
              + [task("getitem", i, 0.004) for i in range(20)])
    assert sorted(cases._block_tasks(stream)) == pytest.approx([0.02, 0.021, 0.022, 0.023])
    assert cases._block_tasks([]) == [0.0]


def _backing(a):
    """The type of the object that owns an array's memory."""
    while isinstance(a, np.ndarray) and a.base is not None:
        a = a.base
    return type(a.obj if isinstance(a, memoryview) else a).__name__


def test_worker_block_outputs_are_prefaulted_mappings(client):
    """In a worker, a block output of at least 4 MiB is one MAP_POPULATE mapping (no cold
    transparent huge pages), of the NumPy call's dtype, wherever the output argument is
    given; the values are the NumPy path's."""
    import mmap
    if not hasattr(mmap, "MAP_POPULATE"):
        pytest.skip("no MAP_POPULATE on this platform")
    # Made in the workers (a NumPy array this large would travel inside the graph).
    x = da.random.default_rng(3).standard_normal((2200, 1024), chunks=(1100, 1024),
                                                 dtype=np.float32)
    xi = (x * 100).astype(np.int16)
    w = RNG.standard_normal((3, 3)).astype(np.float32)
    cases = [
        (lambda a: fnd.gaussian_filter(a, 1.5), x),
        (lambda a: fnd.gaussian_filter(a, 1.5, 0, np.float64), x),   # output positional
        (lambda a: fnd.uniform_filter(a, 3, np.int32), xi),
        (lambda a: fnd.sobel(a, output=np.float32), xi),
        (lambda a: fnd.convolve(a, w), x),                          # the block-sized window
        (lambda a: fastconv.convolve(a, w.astype(np.float64), "same", method="direct"),
         x.astype(np.float64)),
    ]
    for call, a in cases:
        y = call(a)
        kinds = y.map_blocks(lambda b: np.array([[_backing(b)]], object), dtype=object,
                             chunks=(1, 1)).compute()
        assert set(kinds.ravel()) == {"mmap"}
        got, want = y.compute(), call(a.compute())
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)
    small = fnd.gaussian_filter(x[:64].rechunk((32, 1024)), 1.5)
    kinds = small.map_blocks(lambda b: np.array([[_backing(b)]], object), dtype=object,
                             chunks=(1, 1)).compute()
    assert "mmap" not in set(kinds.ravel())                 # below 4 MiB: np.empty
    assert _backing(engine._fresh((1100, 1024), np.float32)) == "ndarray"  # not in a worker

