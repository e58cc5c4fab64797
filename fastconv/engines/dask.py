"""The Dask engine: a ``dask.array.Array`` in, a lazy ``dask.array.Array`` out.

Imported only when a Dask array reaches a public function (``_arrays.engine_for``). The
public function's own validation runs first, on a *shadow* of the Dask array (a
zero-stride NumPy view of one zero with its shape and dtype, no memory), so shapes,
dtypes, modes and every error are exactly the NumPy path's. Then each output block
becomes one task:

* **Halos from the spec.** A ``ConvSpec`` output block ``[o0, o1)`` along an axis reads
  extended input indices ``[o0 + start, o1 + start + k - 1)``; ndimage's correlate and
  convolve read the same from the spec they record on a tiny probe (origin included);
  the other filters read ``h`` = the sum of their passes' radii on each side. The task
  receives exactly the input samples it reads, gathered from however many chunks hold
  them (a chunk smaller than the halo is no problem and nothing is rechunked), as one
  NumPy array: the whole centre chunk by its key, the rest as edge strips that one task
  per source chunk cuts (copies, so no strip keeps its chunk alive; a distributed
  scheduler runs it where the chunk lives, so only strips travel).
* **The boundary rule only at the true edges.** Inside the array a block's neighbours are
  real data. At a true edge the block's piece starts (or ends) at the array's edge, so the
  NumPy path's own boundary extension of the piece *is* the global one (the piece is
  grown, where needed, to hold every mirrored sample); 'wrap' instead gathers the samples
  from the other end of the array, across chunks.
* **'full'/'valid'/'same'** shapes are the NumPy path's; output chunks are the input's,
  the last one grown ('full') or the trailing ones cut ('valid').
* **Large kernels** (larger than a chunk): each block is one FFT/overlap-add call over
  its piece (chunk + kernel - 1) when the decision says so; never a whole-array FFT.
* **Tuned once, on the client.** Each distinct block signature (piece shape, output
  shape, window start) is decided by ``_dispatch.decide`` on a probe block (zeros;
  integers get the dtype's extreme value so that the FFT exactness guard is
  conservative); the Decision travels with the task, which calls ``_dispatch.execute``
  with it: no worker measures. ndimage's N-d correlate/convolve record the spec their
  NumPy path builds on the probe piece; a block whose filter is that one correlation,
  stored as it is, runs it narrowed to the block's outputs (``_window``: a block-sized
  result, no halo outputs); otherwise the task runs the filter on the piece, replaying
  the methods the client decided, and returns the block as a view of the result.
* **Threads budgeted.** Each task runs under ``fastconv.threads(n)`` with
  ``n = cores per host // task threads per host`` (read from the distributed client's
  workers, or the local scheduler's pool), so tasks x threads never oversubscribe.

* **Worker memory.** Inside a distributed worker a task gathers its piece into a buffer
  kept per thread (``_scratch``), and writes a block output of 4 MiB or more into a
  populated mapping (``_fresh``) instead of NumPy's huge-page allocation, whose cold
  pages cost more than the filter on the VM this was measured on.

Every task function is module-level (pickled by reference). A Dask *kernel* (``in2``,
``weights``) is computed on the client when the graph is built: kernels are small.
"""
from __future__ import annotations

import dataclasses
import functools
import inspect
import itertools
import mmap
import operator
import os
import threading

import dask
import dask.array as da
import numpy as np

from .. import _config
from .._dispatch import decide, execute

__all__ = ["conv", "filter_call", "task_threads"]


# -- what one output block reads -------------------------------------------------------

def _runs(idx):
    """Contiguous increasing runs of a 1-D index array, as (start, stop) pairs."""
    breaks = np.flatnonzero(np.diff(idx) != 1) + 1
    return [(int(r[0]), int(r[-1]) + 1) for r in np.split(idx, breaks)]


def _conv_axis(n, a, b, boundary):
    """(runs of x, window start in the piece) for an output block reading extended
    indices [a, b) of an axis of length n with ``boundary`` (numpy.pad name)."""
    if boundary == "wrap" and (a < 0 or b > n):
        return _runs(np.arange(a, b) % n), 0           # the piece is the extended window
    p0, p1 = max(a, 0), min(b, n)
    if boundary in ("symmetric", "reflect", "edge"):
        # At a true edge the launcher mirrors the piece: grow it so that every mirrored
        # sample it reads is in it (then the piece's extension is the array's).
        if a < 0:
            p1 = max(p1, min(n, -a + 1))
        if b > n:
            p0 = min(p0, max(0, 2 * n - b - 1))
    if p1 <= p0:
        # The block reads only the constant fill: keep one sample (never read) so the
        # launcher sees a non-empty input.
        p0 = min(max(a, 0), n - 1)
        p1 = p0 + 1
    return [(p0, p1)], a - p0


def _halo_axis(n, o0, o1, h, wrap):
    """(runs of x, crop start in the piece) for a same-shape filter block [o0, o1) with
    halo ``h`` = (before, after): clipped at true edges (the filter's own mode applies
    there; the piece is grown, where needed, to hold every mirrored sample), or gathered
    across the far edge for 'wrap'."""
    lo, hi = h
    a, b = o0 - lo, o1 + hi
    if wrap and (a < 0 or b > n):
        return _runs(np.arange(a, b) % n), lo
    p0, p1 = max(a, 0), min(b, n)
    if a < 0:
        p1 = max(p1, min(n, -a + 1))
    if b > n:
        p0 = min(p0, max(0, 2 * n - b - 1))
    return [(p0, p1)], o0 - p0


def _segments(bounds, runs):
    """Runs (global start, stop) along an axis -> [(chunk index, slice in the chunk)]."""
    segs = []
    for r0, r1 in runs:
        for ci, (c0, c1) in enumerate(bounds):
            lo, hi = max(r0, c0), min(r1, c1)
            if lo < hi:
                segs.append((ci, slice(lo - c0, hi - c0)))
    return segs


def _pieces(x, runs, in_bounds, edges, edges_name):
    """The nested list (one level per axis) whose ``np.block`` is the samples named by
    the per-axis ``runs``: a whole chunk by its key; a part of a chunk (a halo strip) as
    ``(operator.getitem, edges key, strip)``, evaluated inside the block's task, where the
    edges key is the one task per source chunk (``_edge_tasks``) that cuts every strip
    any block reads from that chunk. ``edges`` collects {chunk index: set of strips}."""
    segs = [_segments(b, r) for b, r in zip(in_bounds, runs)]

    def nest(axis, index):
        if axis == len(segs):
            cis = tuple(segs[a][i][0] for a, i in enumerate(index))
            sl = tuple(segs[a][i][1] for a, i in enumerate(index))
            key = (x.name,) + cis
            if all(s.start == 0 and s.stop == b[c][1] - b[c][0]
                   for s, b, c in zip(sl, in_bounds, cis)):
                return key
            strip = tuple((s.start, s.stop) for s in sl)
            edges.setdefault(cis, set()).add(strip)
            return (operator.getitem, (edges_name,) + cis, strip)
        return [nest(axis + 1, index + (i,)) for i in range(len(segs[axis]))]
    return nest(0, ())


def _edges_name(x, per_axis):
    """The name of the edges tasks of a call whose blocks read ``per_axis`` (the runs of
    every block along every axis): equal in every graph that cuts the same strips."""
    return "fastconv-edges-" + dask.base.tokenize(x.name, x.chunks, repr(per_axis))


def _edge_tasks(x, edges, name):
    """One task per source chunk read in part: a dict {strip: a contiguous copy of it}.
    A copy, not a view, so that a halo never keeps its whole neighbouring chunk alive
    (that chunk can be released as soon as its own block is done), and one task per
    chunk instead of one per strip keeps the graph small (the scheduler's per-task cost
    competes with the tasks on a small machine). A distributed scheduler runs it where
    the chunk lives, so only the strips travel."""
    return {(name,) + cis: (_cut_strips, (x.name,) + cis, _Job(strips=sorted(strips)))
            for cis, strips in edges.items()}


def _cut_strips(chunk, job):
    return {strip: np.array(chunk[tuple(slice(a, b) for a, b in strip)])
            for strip in job.params["strips"]}


class _Job:
    """A task's fixed parameters, opaque to Dask's graph traversal (no tuple or list of
    them is mistaken for a task or a key)."""
    __slots__ = ("params",)

    def __init__(self, **params):
        self.params = params

    def __getstate__(self):
        return self.params

    def __setstate__(self, state):
        self.params = state


def _assemble(pieces):
    """The block's piece from its chunk slices (nested lists, as ``np.block`` takes), and
    whether it lives in the thread's scratch buffer (``_scratch``): then the caller must
    not return memory that shares it."""
    if not isinstance(pieces, list):
        return pieces, False
    if not _in_worker():
        return np.block(pieces), False
    return _block_into_scratch(pieces), True


def _in_worker() -> bool:
    try:
        from distributed import get_worker
        get_worker()
        return True
    except (ImportError, ValueError):
        return False


# A distributed worker process has MALLOC_TRIM_THRESHOLD_ set (by its nanny, so that freed
# memory goes back to the OS at once), which also fixes glibc's mmap threshold: every
# array above 128 KiB is a fresh mapping, and its first touch page-faults. A fresh piece
# of 2064^2 float32 (17 MB) took 1.6-3 ms to gather with np.block in such a process against
# 0.8 ms into a reused buffer (the filter itself: 16 ms), and a task's resident growth
# counted the piece on top of its output. So each worker thread gathers its pieces into one
# buffer that it keeps (as large as its largest piece so far; the output of a block is
# always its own array). Outside a worker, np.block: freed memory is reused there anyway.
_SCRATCH = threading.local()


def _scratch(nbytes):
    buf = getattr(_SCRATCH, "buf", None)
    if buf is None or buf.nbytes < nbytes:
        _SCRATCH.buf = None                     # free the old one before the new one
        buf = _SCRATCH.buf = np.empty(max(nbytes, 1), np.uint8)
    return buf


def _leaf(pieces):
    while isinstance(pieces, list):
        pieces = pieces[0]
    return pieces


def _block_into_scratch(pieces):
    """``np.block(pieces)`` written into the thread's scratch buffer."""
    leaves = []

    def collect(p):
        if isinstance(p, list):
            for q in p:
                collect(q)
        else:
            leaves.append(p)
    collect(pieces)
    dtype = np.result_type(*leaves)
    ndim = leaves[0].ndim
    shape, level = [], pieces
    for ax in range(ndim):
        shape.append(sum(_leaf(p).shape[ax] for p in level))
        level = level[0]
    nbytes = int(np.prod(shape)) * dtype.itemsize
    out = _scratch(nbytes)[:nbytes].view(dtype).reshape(shape)

    def fill(p, ax, index):
        if not isinstance(p, list):
            out[tuple(index)] = p
            return
        o = 0
        for q in p:
            n = _leaf(q).shape[ax]
            fill(q, ax + 1, index + [slice(o, o + n)])
            o += n
    fill(pieces, 0, [])
    return out


# Block outputs are fresh memory every time (Dask keeps them), and in a worker every large
# np.empty is a fresh mapping (see above) which NumPy (arrays of 4 MiB and more) advises
# the kernel to back with transparent huge pages. On the 2-core VM this was measured on, a
# fresh huge page is often "cold" (the VM's balloon driver reports free 2 MiB blocks to
# the host, which then faults each one back in): a 2064^2 float32 output (17 MB) cost
# 30-44 ms of system time cold, 2-12 ms warm, against a 17 ms filter. In the cluster
# (gaussian_filter sigma 2, 16384^2 in 2048^2 chunks, 2 workers x 1 thread, 4 interleaved
# calls each) the fastconv block task took 54-64 ms of CPU in cold calls (3 of 4: 5.13,
# 3.95, 2.05 s) and 21 ms in the warm one (1.85 s). The same bytes mapped with
# MAP_POPULATE (small pages, filled in the mmap call itself) cost 5-10 ms of system time
# every time: block tasks 24.2-28.4 ms of CPU, calls 1.31-1.35 s (3.36 s for the
# first). So, in a worker, an output of _POPULATE_MIN bytes or more is such a
# mapping, owned by the array (freed with it; pickled, sized and spilled by Dask as any
# array). The price where huge pages are never cold: about 4 ms a 17 MB block here
# (populated small pages against warm huge pages). Elsewhere (outside a worker, off Linux),
# np.empty: a plain process's malloc reuses freed memory for large arrays.
_POPULATE_MIN = 1 << 22


def _fresh(shape, dtype):
    """An uninitialised output array for a block: a populated mapping in a worker for
    _POPULATE_MIN bytes or more (see above), else np.empty."""
    dtype = np.dtype(dtype)
    count = int(np.prod(shape))
    nbytes = count * dtype.itemsize
    if (nbytes < _POPULATE_MIN or not hasattr(mmap, "MAP_POPULATE") or dtype.hasobject
            or not _in_worker()):
        return np.empty(shape, dtype)
    buf = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS
                    | mmap.MAP_POPULATE)
    return np.frombuffer(buf, dtype, count).reshape(shape)


def _own(result, piece, scratch):
    """``result``, copied if it shares the scratch buffer the piece lives in."""
    return result.copy() if scratch and np.may_share_memory(result, piece) else result


def _graph_array(kind, token, x, tasks, out_chunks, dtype, extra=None):
    """A dask array from ``tasks`` {block index: task tuple} reading chunks of ``x``;
    ``token``: everything the result depends on besides x (its name)."""
    from dask.highlevelgraph import HighLevelGraph
    name = f"fastconv-{kind}-" + dask.base.tokenize(x.name, out_chunks, str(dtype), token)
    dsk = {(name,) + idx: task for idx, task in tasks.items()}
    if extra:
        dsk.update(extra)
    graph = HighLevelGraph.from_collections(name, dsk, dependencies=[x])
    return da.Array(graph, name, out_chunks, dtype=dtype,
                    meta=np.empty((0,) * len(out_chunks), dtype))


def _bounds(chunks):
    edges = np.concatenate([[0], np.cumsum(chunks)]).astype(int)
    return list(zip(edges[:-1].tolist(), edges[1:].tolist()))


def _out_chunks(in_chunks, n_out):
    """The input's chunks along an axis, fitted to an output of length ``n_out``."""
    c = [int(v) for v in in_chunks if v > 0] or [1]
    total, big = sum(c), max(c)
    if n_out >= total:
        extra = n_out - total
        if extra <= big:
            c[-1] += extra
        else:
            c += [big] * (extra // big) + ([extra % big] if extra % big else [])
        return tuple(c)
    out, left = [], n_out
    for v in c:
        if left <= 0:
            break
        out.append(min(v, left))
        left -= out[-1]
    return tuple(out) or (0,)


def _shadow(a):
    """A NumPy stand-in for dask array ``a``: its shape and dtype, one zero of memory."""
    return np.broadcast_to(np.zeros((), a.dtype), a.shape)


def _check_chunks(x, name):
    """Refuse chunks that are not NumPy arrays (CuPy-backed Dask arrays): the CPU kernels
    would fail inside the tasks, after the graph was built."""
    meta = getattr(x, "_meta", None)
    if meta is not None and not isinstance(meta, np.ndarray):
        raise TypeError(f"{name} is a Dask array of {type(meta).__module__}."
                        f"{type(meta).__name__} chunks; fastconv's Dask engine runs NumPy "
                        f"chunks only (map the chunks to NumPy first, e.g. "
                        f"x.map_blocks(cupy.asnumpy), or call fastconv on each CuPy "
                        f"chunk with x.map_overlap)")


def _materialise(value):
    """A Dask kernel argument, computed now (kernels are small); anything else as is."""
    from .._arrays import array_kind
    return value.compute() if array_kind(value) == "dask" else value


# -- compiled kernels from the first block ------------------------------------------------
#
# A worker is a fresh process, and fastconv's first-call mode there is the no-compile tier
# (_firstcall.py): plain NumPy / scipy-style passes while a background process compiles
# the kernels. On a cluster that is the wrong trade. Measured (2 workers x 1 thread,
# gaussian_filter sigma 2, 4096^2 in 1024^2 chunks): every worker served every block from
# the tier (100-370 ms a block against 8-12 ms compiled) and started its own compile
# process, so two compiles of the same kernels competed with the two workers for the two
# cores; after four whole calls (5-13 s) no worker had switched. So the engine decides on
# the client, and runs every task, in "compile" mode: the client's decisions are never
# tier decisions baked into the graph, a task compiles (or loads from numba's disk cache)
# its kernels in the foreground, and no worker starts a compile process. The client also
# runs one block of each kind on a probe (``_warm``) while it builds the graph, so the
# kernels are in the disk cache that the workers share (NUMBA_CACHE_DIR) and a worker's
# first block only loads them (0.5 s, measured) instead of every worker compiling them.

def _compiled():
    """The first-call mode of the engine's own calls: compile (or load), never the tier."""
    return _config.override(first_call="compile")


_WARMED: set = set()          # warm keys already run in this process


def _in_compile_mode(func):
    """Build the graph in compile mode too (``_compiled``)."""
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        with _compiled():
            return func(*args, **kwargs)
    return wrapper


def _largest(warm, key, piece_shape, call):
    """Keep, per warm key, the call with the largest piece (an interior block)."""
    old = warm.get(key)
    if old is None or np.prod(piece_shape) > np.prod(old[0]):
        warm[key] = (piece_shape, call)


def _warm(key, task, piece_shape, dtype, *args):
    """Run the task function ``task`` once on a probe piece (the same code path, thread
    count and kernels as its blocks), unless this process already has for ``key``."""
    if key in _WARMED:
        return
    _WARMED.add(key)
    try:
        task(_probe(piece_shape, dtype), *args)
    except Exception:          # the task itself raises it, at compute time, as Dask does
        pass


# -- threads -----------------------------------------------------------------------------

def task_threads() -> int:
    """Threads each task may use: the cores of a host divided by the task threads that run
    on it at once (a distributed cluster's workers on that host, or the local threaded
    scheduler's pool), at least 1."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    try:
        from distributed import get_client
        client = get_client()
    except (ImportError, ValueError):
        client = None
    if client is not None:
        return _cluster_threads(client)
    scheduler = dask.base.get_scheduler()
    if scheduler is dask.get:                       # the synchronous scheduler
        return max(1, min(cores, _config.get_num_threads()))
    pool = dask.config.get("num_workers", None) or cores
    return max(1, cores // int(pool))


@functools.lru_cache(maxsize=8)
def _cluster_key_threads(workers_key, cores_key):
    """min over hosts of (cores of the host // task threads of its workers)."""
    per_host, cores = {}, dict(cores_key)
    for _addr, host, nthreads in workers_key:
        per_host[host] = per_host.get(host, 0) + nthreads
    return max(1, min((cores.get(h, 1) // t for h, t in per_host.items()), default=1))


def _cluster_threads(client) -> int:
    info = client.scheduler_info()["workers"]
    workers_key = tuple(sorted((a, w["host"], int(w["nthreads"])) for a, w in info.items()))
    cores = client.run(_host_cores)
    cores_key = tuple(sorted((info[a]["host"], int(c)) for a, c in cores.items() if a in info))
    return _cluster_key_threads(workers_key, cores_key)


def _host_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


# -- ConvSpec calls (scipy.signal drop-ins) -------------------------------------------------

def _probe(shape, dtype):
    """A block of zeros to decide on; integers hold the dtype's largest magnitude so the
    FFT exactness guard judges the worst block."""
    dtype = np.dtype(dtype)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return np.full(shape, info.min if -info.min > info.max else info.max, dtype)
    return np.zeros(shape, dtype)


def _conv_block(pieces, wk, job):
    """One task: the NumPy path's execute step on one block, with the client's Decision."""
    p = job.params
    wk = wk[p["wslice"]] if p["wslice"] is not None else wk
    piece, scratch = _assemble(pieces)
    spec = p["spec"]
    # execute computes a CPU spec into a C-contiguous array of the compute dtype, the
    # block's result when no cast or reversal follows (_dispatch._finish): then into a
    # fresh block.
    out = (_fresh(spec.out_shape, spec.compute_dtype)
           if spec.device == "cpu" and spec.result_dtype == spec.compute_dtype
           and not spec.reverse_out else None)
    with _config.threads(p["nthreads"]), _compiled():
        return _own(execute(spec, piece, None, p["decision"], wk=wk, out=out), piece,
                    scratch)


@_in_compile_mode
def conv(prepare, fallback, in1, in2, workers=None):
    """A ConvSpec call over a Dask array. ``prepare(x, w)`` is the public function's
    validation (``("run", spec, x, w, method)`` or ``("result", array)``) run on the
    shadow; ``fallback(x, w)`` is the public NumPy call, used as one lazy task for the
    cases that are not a correlation of a chunked input with a small kernel (0-d inputs,
    empty inputs, 'valid' with the kernel as the larger operand, a chunked kernel with a
    NumPy input)."""
    from .._arrays import array_kind
    from .._dispatch import prepare_kernel
    if array_kind(in1) != "dask":
        return _one_task(fallback, in1, _materialise(in2), prepare)
    _check_chunks(in1, "in1")
    w = _materialise(in2)
    shadow = _shadow(in1)
    plan = prepare(shadow, np.asarray(w) if array_kind(w) == "numpy" else w)
    if plan[0] != "run" or plan[2] is not shadow or in1.ndim == 0:
        return _one_task(fallback, in1, w, prepare)
    _, spec, _, wv, method = plan
    wk = prepare_kernel(spec, np.asarray(wv))
    nthreads = task_threads()
    if workers is not None:
        nthreads = max(1, min(nthreads, _config.resolve_workers(workers)))
    x = in1
    out_chunks = tuple(_out_chunks(c, m) for c, m in zip(x.chunks, spec.out_shape))
    kernel_key = "fastconv-kernel-" + dask.base.tokenize(wk)
    in_bounds = [_bounds(c) for c in x.chunks]
    decisions = {}
    per_axis = []
    for ax, (n, k, s) in enumerate(zip(spec.x_shape, wk.shape, spec.start)):
        row = []
        for o0, o1 in _bounds(out_chunks[ax]):
            if ax in spec.batch:        # x and w pair elementwise: no halo, kernel slice
                row.append(([(o0, o1)], 0, (o0, o1)))
            else:
                runs, local = _conv_axis(n, o0 + s, o1 + s + k - 1, spec.boundary)
                row.append((runs, local, None))
        per_axis.append(row)
    tasks, edges, edges_name = {}, {}, _edges_name(x, per_axis)
    warm = {}
    for index in itertools.product(*(range(len(r)) for r in per_axis)):
        cells = [per_axis[a][i] for a, i in enumerate(index)]
        runs = [c[0] for c in cells]
        piece_shape = tuple(sum(e - b for b, e in r) for r in runs)
        out_shape = tuple(out_chunks[a][i] for a, i in enumerate(index))
        start = tuple(c[1] for c in cells)
        wslice = (tuple(slice(*c[2]) if c[2] else slice(None) for c in cells)
                  if spec.batch else None)
        wkb = wk[wslice] if spec.batch else wk
        bspec = dataclasses.replace(spec, x_shape=piece_shape, w_shape=wkb.shape,
                                    out_shape=out_shape, start=start, reverse_out=False,
                                    conj_out=False)
        key = (piece_shape, out_shape, start, tuple(c[2] for c in cells))
        if key not in decisions:
            decisions[key] = decide(bspec, _probe(piece_shape, x.dtype), None, method,
                                    wk=wkb)
        job = _Job(spec=bspec, decision=decisions[key], wslice=wslice, nthreads=nthreads)
        tasks[index] = (_conv_block, _pieces(x, runs, in_bounds, edges, edges_name),
                          kernel_key, job)
        _largest(warm, ("conv", spec.compute_dtype.str, spec.ndim, spec.boundary, nthreads,
                        repr(decisions[key].method), tuple(sorted(decisions[key].params))),
                 piece_shape, (_conv_block, wk, job))
    for wkey, (shape, (task, *args)) in warm.items():
        _warm(wkey, task, shape, x.dtype, *args)
    token = (repr(spec), wk, sorted((repr(k), repr(d)) for k, d in decisions.items()))
    return _graph_array("conv", token, x, tasks, out_chunks, spec.result_dtype,
                        extra={kernel_key: wk, **_edge_tasks(x, edges, edges_name)})


def _one_task(fallback, in1, in2, prepare):
    """The whole call as one lazy task (shape and dtype from the shadow's validation)."""
    from .._arrays import array_kind
    s1 = _shadow(in1) if array_kind(in1) == "dask" else np.asarray(in1)
    s2 = _shadow(in2) if array_kind(in2) == "dask" else np.asarray(in2)
    plan = prepare(s1, s2)
    if plan[0] == "run":
        shape, dtype = plan[1].out_shape, plan[1].result_dtype
    else:
        shape, dtype = plan[1].shape, plan[1].dtype
    task = dask.delayed(_call, pure=True)(fallback, in1, in2)
    return da.from_delayed(task, shape, dtype=dtype,
                           meta=np.empty((0,) * len(shape), dtype))


def _call(fallback, x, w):
    with _compiled():
        return np.asarray(fallback(x, w))


# -- ndimage filters ---------------------------------------------------------------------

def _radius(sigma, truncate, radius):
    return int(radius) if radius is not None else int(truncate * float(sigma) + 0.5)


def _seq(value, n):
    return list(value) if (not isinstance(value, str) and np.iterable(value)) else [value] * n


def _axes_of(axes, ndim):
    if axes is None:
        return list(range(ndim))
    axes = [axes] if np.isscalar(axes) else list(axes)
    return [int(a) % ndim for a in axes]


def _filter_halo(name, ndim, a):
    """Per-axis halo (sum of the passes' radii) and per-axis modes of an ndimage call,
    from its bound arguments ``a``."""
    h, modes = [0] * ndim, [a.get("mode", "reflect")] * ndim
    if name in ("correlate1d", "convolve1d", "gaussian_filter1d", "uniform_filter1d"):
        ax = int(a.get("axis", -1)) % ndim
        if name == "gaussian_filter1d":
            h[ax] = _radius(a["sigma"], a.get("truncate", 4.0), a.get("radius"))
        elif name == "uniform_filter1d":
            h[ax] = int(a["size"]) - 1
        else:
            h[ax] = len(np.asarray(a["weights"])) - 1
        return h, modes
    if name in ("correlate", "convolve"):
        # |origin| <= k // 2 keeps reads within k - 1 on either side; filter_call narrows
        # this to the recorded spec's exact reads where it can.
        axes = _axes_of(a.get("axes"), ndim)
        w = np.asarray(a["weights"])
        for ax, k in zip(axes, w.shape[-len(axes):]):
            h[ax] = max(int(k) - 1, 0)
        return h, modes
    if name in ("sobel", "prewitt"):
        return [1] * ndim, _seq(a.get("mode", "reflect"), ndim)
    axes = _axes_of(a.get("axes"), ndim)
    mode_list = _seq(a.get("mode", "reflect"), len(axes))
    for ax, m in zip(axes, mode_list):
        modes[ax] = m
    if name == "laplace":
        for ax in axes:
            h[ax] = 1
        return h, modes
    if name == "uniform_filter":
        for ax, s in zip(axes, _seq(a.get("size", 3), len(axes))):
            h[ax] = max(int(s) - 1, 0)
        return h, modes
    # gaussian_filter, gaussian_laplace, gaussian_gradient_magnitude
    kw = a.get("kwargs", {}) or {}
    truncate = a.get("truncate", kw.get("truncate", 4.0))
    radius = a.get("radius", kw.get("radius"))
    radii = _seq(radius, len(axes))
    for ax, s, r in zip(axes, _seq(a["sigma"], len(axes)), radii):
        h[ax] = _radius(s, truncate, r) if float(s) > 1e-15 else 0
    return h, modes


def _filter_block(pieces, job):
    """One task: the NumPy ndimage filter on a block with its halo, cropped; the N-d
    correlations inside run the methods the client decided."""
    from .. import ndimage
    p = job.params
    name, args, kwargs, crop, methods, nthreads = (
        p["name"], p["args"], p["kwargs"], p["crop"], p["methods"], p["nthreads"])
    piece, scratch = _assemble(pieces)
    func = getattr(ndimage, name).__wrapped__
    # The output array is the engine's (_fresh), of the dtype the NumPy call returns: the
    # output argument (``p["at"]``: its position in args, or None for a keyword; dtype
    # None: the filter takes no output argument).
    if p["dtype"] is not None:
        out = _fresh(piece.shape, p["dtype"])
        if p["at"] is not None:
            args = args[:p["at"]] + (out,) + args[p["at"] + 1:]
        else:
            kwargs = dict(kwargs, output=out)
    token = ndimage._METHODS.set(ndimage._MethodPlan(list(methods), record=False))
    try:
        with _config.threads(nthreads), _compiled():
            out = func(piece, *args, **kwargs)
    finally:
        ndimage._METHODS.reset(token)
    # A view: the block keeps its piece's halo rows alive (a few per cent for chunks much
    # larger than the halo) instead of paying a copy of every block.
    return _own(out, piece, scratch)[crop]


@_in_compile_mode
def filter_call(func, input, args, kwargs):
    """An ndimage filter (the undecorated public function ``func``) over a Dask array."""
    name = func.__name__
    _check_chunks(input, "input")
    args = tuple(_materialise(v) for v in args)
    kwargs = {k: _materialise(v) for k, v in kwargs.items()}
    x = input
    bound = inspect.signature(func).bind(_shadow(x), *args, **kwargs)
    bound.apply_defaults()
    a = dict(bound.arguments)
    out = a.get("output")
    if out is not None and not isinstance(out, (type, np.dtype, str)):
        raise TypeError("output must be None or a dtype when input is a dask array "
                        "(the result is a new lazy dask array)")
    names = list(inspect.signature(func).parameters)
    at = names.index("output") - 1 if "output" in names else None
    at = at if at is not None and at < len(args) else None
    tiny = np.zeros((1,) * x.ndim, x.dtype)
    dtype = func(tiny, *args, **kwargs).dtype       # validates and gives scipy's dtype
    halo, modes = _filter_halo(name, x.ndim, a)
    halo = [(h, h) for h in halo]
    wrap = [m in ("wrap", "grid-wrap") for m in modes]
    tunes = name in ("correlate", "convolve")
    if tunes:
        # The exact reads before and after each output (origin included), from the spec
        # the NumPy path builds (recorded on a tiny probe); every N-d correlation of the
        # call reads the same window (complex data: one per component).
        _, tiny_calls = _record(func, tiny.shape, x.dtype, args, kwargs)
        if tiny_calls:
            spec, w = tiny_calls[0]
            halo = [(-s, k - 1 + s) for s, k in zip(spec.start, w.shape)]
    nthreads = task_threads()
    per_axis = [[_halo_axis(n, o0, o1, h, wr) + ((o1 - o0),)
                 for o0, o1 in _bounds(c)]
                for n, c, h, wr in zip(x.shape, x.chunks, halo, wrap)]
    methods, calls, decisions, extra, warm = {}, {}, {}, {}, {}
    in_bounds = [_bounds(c) for c in x.chunks]
    tasks, edges, edges_name = {}, {}, _edges_name(x, per_axis)
    for index in itertools.product(*(range(len(r)) for r in per_axis)):
        cells = [per_axis[ax][i] for ax, i in enumerate(index)]
        runs = [c[0] for c in cells]
        crop = tuple(slice(c[1], c[1] + c[2]) for c in cells)
        piece_shape = tuple(sum(e - b for b, e in r) for r in runs)
        if piece_shape not in methods:
            methods[piece_shape], calls[piece_shape] = (
                _record(func, piece_shape, x.dtype, args, kwargs) if tunes else ((), ()))
        pieces = _pieces(x, runs, in_bounds, edges, edges_name)
        window = _window(calls[piece_shape], crop, x.dtype, dtype)
        if window is None:
            job = _Job(name=name, args=args, kwargs=kwargs, crop=crop, at=at,
                       dtype=dtype if "output" in names else None,
                       methods=methods[piece_shape], nthreads=nthreads)
            tasks[index] = (_filter_block, pieces, job)
            _largest(warm, ("filter", name, x.dtype.str, x.ndim, repr(modes), nthreads,
                            repr(methods[piece_shape])), piece_shape, (_filter_block, job))
            continue
        bspec, wk = window
        key = (piece_shape, bspec.out_shape, bspec.start)
        if key not in decisions:
            decisions[key] = decide(bspec, _probe(piece_shape, x.dtype), None, "auto", wk=wk)
        kernel_key = "fastconv-kernel-" + dask.base.tokenize(wk)
        extra[kernel_key] = wk
        job = _Job(spec=bspec, decision=decisions[key], wslice=None, nthreads=nthreads)
        tasks[index] = (_conv_block, pieces, kernel_key, job)
        _largest(warm, ("conv", bspec.compute_dtype.str, bspec.ndim, bspec.boundary, nthreads,
                        repr(decisions[key].method), tuple(sorted(decisions[key].params))),
                 piece_shape, (_conv_block, wk, job))
    token = (name, repr(args), repr(kwargs), [a for a in args if isinstance(a, np.ndarray)],
             sorted(methods.items()), sorted((repr(k), repr(d)) for k, d in decisions.items()),
             nthreads)
    for wkey, (shape, (task, *targs)) in warm.items():
        _warm(wkey, task, shape, x.dtype, *targs)
    extra.update(_edge_tasks(x, edges, edges_name))
    return _graph_array("filter", token, x, tasks, x.chunks, dtype, extra=extra)


def _window(calls, crop, in_dtype, out_dtype):
    """(ConvSpec, prepared kernel) computing a block's outputs alone from its piece, or
    None. When the filter on the piece is exactly one N-d correlation whose result is
    stored as it is (float data and output of one native dtype) and every weight is in
    scipy's footprint (no data-dependent route: zero taps would skip non-finite data),
    the recorded spec on the piece, narrowed to the crop (window start shifted by the
    crop's offset), gives the same outputs without computing the halo's outputs, the
    piece-sized output array, or the boundary extension of the piece's inner edges."""
    from .._dispatch import prepare_kernel
    if len(calls) != 1:
        return None
    spec, w = calls[0]
    if not (np.dtype(in_dtype) == np.dtype(out_dtype) == spec.compute_dtype
            == spec.result_dtype) or not np.all(w != 0):
        return None
    bspec = dataclasses.replace(
        spec, out_shape=tuple(c.stop - c.start for c in crop),
        start=tuple(s + c.start for s, c in zip(spec.start, crop)))
    return bspec, prepare_kernel(bspec, w)


def _record(func, shape, dtype, args, kwargs):
    """The methods ``func`` decides (through the dispatcher's tuner, on the client) for
    its N-d correlations on a probe block of ``shape``, and those calls' (spec, prepared
    weights); nothing is computed."""
    from .. import ndimage
    plan = ndimage._MethodPlan([], record=True)
    token = ndimage._METHODS.set(plan)
    try:
        func(np.zeros(shape, dtype), *args, **kwargs)
    finally:
        ndimage._METHODS.reset(token)
    return tuple(plan.methods), tuple(plan.calls)
