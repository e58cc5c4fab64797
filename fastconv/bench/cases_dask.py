"""Benchmark cases for the Dask engine against dask-image, on the same cluster and chunks.

One ``distributed.LocalCluster`` (worker processes, ``WORKERS`` x 1 thread, started on
first use and closed at exit); float32 input generated and persisted in the workers'
memory once per case; each contender's timed call builds its lazy result and persists it
in the workers (nothing travels to the client), then releases it. dask-image runs
``map_overlap`` with SciPy per block; fastconv one task per block with its halo.

    python -m fastconv.bench.cases_dask [--n N] [--chunk C] [--workers W] [--repeat R]
                                       [--memory] [--tasks] [--scaling]
                                       [--out-of-core RxC] [--amm-interval TIME]

``--out-of-core 32768x65536 --chunk 2048 --memory-limit 1GiB`` writes an 8 GiB zarr
array and filters it into another with workers limited to 1 GiB each.
``--memory`` reports, for one call of each contender whose result is summed in the
workers (no output kept; Linux: peaks are reset through /proc/self/clear_refs), each
worker's peak RSS minus its idle RSS, the largest per-task growth and the bytes received
from other workers (see "peak memory per worker" below); ``--tasks`` splits a block
task's time in the cluster (see "where a task's time goes"); ``--scaling`` times fastconv on
1 and on ``WORKERS`` workers. ``--amm-interval 100ms`` starts the cluster with that active
memory manager interval (the Scaling-out guide's advice when memory is tight): replicas of
chunks the scheduler moved between workers are dropped sooner.
"""
from __future__ import annotations

import argparse
import atexit

import numpy as np

from . import Case, format_table, run_cases

try:                        # the memory probe is a worker plugin (distributed requires it)
    from distributed.diagnostics.plugin import WorkerPlugin as _WorkerPlugin
except ImportError:
    _WorkerPlugin = object

N = 4096
CHUNK = 1024
WORKERS = 2
AMM_INTERVAL = None       # the active memory manager's interval (None: Dask's default, 2s)

_CLUSTERS = {}


def client(workers=WORKERS):
    """The benchmark's client on a LocalCluster of ``workers`` processes x 1 thread."""
    if workers not in _CLUSTERS:
        import dask
        import distributed
        amm = ({"distributed.scheduler.active-memory-manager.interval": AMM_INTERVAL}
               if AMM_INTERVAL else {})
        with dask.config.set(amm):      # read when the (in-process) scheduler starts
            cluster = distributed.LocalCluster(n_workers=workers, threads_per_worker=1,
                                               processes=True, dashboard_address=":0",
                                               silence_logs=40)
        c = distributed.Client(cluster)
        _CLUSTERS[workers] = (cluster, c)
        atexit.register(_close, workers)
    return _CLUSTERS[workers][1]


def _close(workers):
    cluster, c = _CLUSTERS.pop(workers, (None, None))
    if c is not None:
        c.close()
        cluster.close()


def data(c, n=None, chunk=None):
    """A persisted float32 n x n standard-normal dask array in the workers' memory."""
    import dask.array as da
    import distributed
    n, chunk = n or N, chunk or CHUNK
    x = da.random.default_rng(0).standard_normal((n, n), chunks=chunk, dtype=np.float32)
    with c.as_current():
        x = c.persist(x)
        distributed.wait(x)
    return x


def _run(c, build):
    """Build the lazy result, persist it in the workers, wait, release it, and wait until
    the scheduler has forgotten its keys: a call right after (the harness's untimed
    lead-in, then the timed one) would otherwise find a graph of deterministic keys
    (dask-image's) still in memory and compute nothing."""
    import time

    import distributed
    with c.as_current():             # the engine reads this cluster's thread budget
        y = c.persist(build())
        distributed.wait(y)
    keys = [f.key for f in distributed.futures_of(y)]
    del y                            # the futures go: the client releases their keys
    deadline = time.perf_counter() + 30
    while time.perf_counter() < deadline and c.run_on_scheduler(_any_known, keys):
        time.sleep(0.01)


def _any_known(keys, dask_scheduler=None):
    return any(k in dask_scheduler.tasks for k in keys)


def _reduce(c, build):
    """Build the lazy result and reduce it in the workers (no block is kept)."""
    with c.as_current():
        c.compute(build().sum()).result()


def contenders(c, x, what, reduce=False):
    """{label: zero-argument callable} for one filter on dask array ``x``; ``reduce``:
    sum the result instead of persisting it (for memory peaks without the output)."""
    run = _reduce if reduce else _run
    from .. import ndimage as fn
    w5 = np.random.default_rng(1).standard_normal((5, 5)).astype(np.float32)
    w63 = np.random.default_rng(2).standard_normal((63, 63)).astype(np.float32)
    ours = {"gaussian": lambda: fn.gaussian_filter(x, 2.0),
            "convolve5": lambda: fn.convolve(x, w5),
            "convolve63": lambda: fn.convolve(x, w63)}[what]
    fns = {"fastconv": lambda: run(c, ours)}
    try:
        from dask_image import ndfilters as di
    except ImportError:
        return fns
    theirs = {"gaussian": lambda: di.gaussian_filter(x, 2.0),
              "convolve5": lambda: di.convolve(x, w5),
              "convolve63": lambda: di.convolve(x, w63)}[what]
    fns["dask-image"] = lambda: run(c, theirs)
    return fns


def _case(what):
    def make():
        c = client()
        return contenders(c, data(c), what)
    return make


CASES = [
    Case("dask", f"gaussian_filter sigma=2 {N}^2 chunks {CHUNK}", _case("gaussian"),
         {"dask-image": 3.0}, min_time=0.5),
    Case("dask", f"convolve 5x5 {N}^2 chunks {CHUNK}", _case("convolve5"),
         {"dask-image": 3.0}, min_time=0.5),
    Case("dask", f"convolve 63x63 {N}^2 chunks {CHUNK}", _case("convolve63"),
         {"dask-image": 3.0}, min_time=0.5),
]


# -- peak memory per worker ----------------------------------------------------------------
# The measure: per worker, the peak resident set during one call minus the worker's idle
# resident set just before it. The idle set (reported separately) holds the process's own
# footprint (Python, NumPy, SciPy, numba/LLVM and the compiled kernels: about 300 MiB) and
# its share of the persisted input; the growth is what the call adds: the running task's
# arrays plus what Dask holds for the worker meanwhile (chunks fetched from other workers
# for queued tasks, results waiting to be reduced). A worker plugin also records, per task,
# the peak during the task minus the resident set at its start (with 1 thread per worker:
# one task at a time; data arriving from other workers during the task counts too), and
# the bytes each worker received from the others. Unit: (chunk + 2 halo)^d x itemsize.

def _reset_peak():
    """Reset this process's peak RSS (Linux); returns the current RSS in bytes."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    return _status("VmRSS")


def _status(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0


def _peak():
    return _status("VmHWM")


def _rss():
    return _status("VmRSS")


class MemoryProbe(_WorkerPlugin):
    """Worker plugin: the worker's peak RSS and the largest per-task RSS growth since
    ``_probe_start``. Peaks are reset at every task start (the peak since the last reset
    is folded into the worker's first)."""
    name = "fastconv-memory-probe"
    idempotent = True

    def setup(self, worker):
        self.worker = worker
        self.peak, self.task, self.rss0 = 0, 0, None

    def transition(self, key, start, finish, **kwargs):
        if finish == "executing":
            self.peak = max(self.peak, _peak())
            self.rss0 = _reset_peak()
        elif start == "executing" and self.rss0 is not None:
            hwm = _peak()
            self.peak = max(self.peak, hwm)
            self.task = max(self.task, hwm - self.rss0)
            self.rss0 = None


def _probe_start(dask_worker):
    probe = dask_worker.plugins[MemoryProbe.name]
    dask_worker.transfer_incoming_log.clear()
    idle = _reset_peak()
    probe.peak, probe.task, probe.rss0 = idle, 0, None
    return idle


def _probe_end(dask_worker):
    probe = dask_worker.plugins[MemoryProbe.name]
    received = sum(e["total"] for e in dask_worker.transfer_incoming_log)
    return max(probe.peak, _peak()), probe.task, received


def peak_growth(c, fn):
    """{worker: (peak RSS during ``fn()`` - idle RSS before, largest per-task growth,
    bytes received from other workers)}, with the idle RSS: {worker: bytes}."""
    c.register_plugin(MemoryProbe())
    idle = c.run(_probe_start)
    fn()
    end = c.run(_probe_end)
    return {w: (end[w][0] - idle[w], end[w][1], end[w][2]) for w in idle}, idle


def memory_report(c, x, whats, repeat=3):
    """Lines: per case and contender, the medians over ``repeat`` calls of the largest
    worker's growth, task growth and bytes received, in units of (chunk + halo)."""
    halo = {"gaussian": 8, "convolve5": 2, "convolve63": 31}
    chunk = max(x.chunks[0])
    lines = []
    for w in whats:
        unit = (chunk + 2 * halo[w]) ** x.ndim * x.dtype.itemsize
        for label, fn in contenders(c, x, w, reduce=True).items():
            fn()
            runs = [peak_growth(c, fn) for _ in range(repeat)]
            med = [float(np.median([max(g[i] for g in r[0].values()) for r in runs]))
                   for i in range(3)]
            idle = max(runs[-1][1].values())
            lines.append(f"memory {w} {label}: worker peak - idle {med[0] / unit:.1f}x, "
                         f"largest task {med[1] / unit:.1f}x, received from other workers "
                         f"{med[2] / unit:.1f}x (medians of {repeat}, max over workers; "
                         f"unit chunk + halo = {unit / 2**20:.1f} MiB; idle worker "
                         f"{idle / 2**20:.0f} MiB)")
    return lines


# -- where a task's time goes ---------------------------------------------------------------
# Inside the cluster a block takes longer than the same block alone. ``--tasks`` splits
# it: per contender, the median compute time of its block tasks (the distributed task
# stream), the workers' CPU seconds during the call divided by its block tasks (process
# CPU: the task thread plus the worker's own event loop, transfers and bookkeeping), and
# the same filter on one piece-sized array alone in this process, one thread. Wall above
# CPU is time a worker waited for a core (the machine's other processes, the scheduler,
# the other worker); CPU above "alone" is what the worker adds (gathering the piece, fresh
# memory, Dask's own work). The system part of the CPU is quoted on its own: fresh memory
# shows there (cold transparent huge pages cost 30-44 ms a 17 MB block on the dev VM; see
# _fresh in fastconv/engines/dask.py).

def _cpu_seconds():
    """(user, system) CPU seconds of this process."""
    import resource
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime, r.ru_stime


def task_report(c, x, whats, repeat=3):
    """Lines: per case and contender, medians over ``repeat`` calls (see above)."""
    import time

    import distributed
    import scipy.ndimage as sndi

    from .. import ndimage as fn
    from .. import threads
    chunk = max(x.chunks[0])
    halo = {"gaussian": 8, "convolve5": 2, "convolve63": 31}
    w5 = np.random.default_rng(1).standard_normal((5, 5)).astype(np.float32)
    w63 = np.random.default_rng(2).standard_normal((63, 63)).astype(np.float32)
    lines = []
    for w in whats:
        piece = np.random.default_rng(3).standard_normal(
            (chunk + 2 * halo[w],) * x.ndim).astype(np.float32)
        alone_fns = {
            "fastconv": {"gaussian": lambda: fn.gaussian_filter(piece, 2.0),
                         "convolve5": lambda: fn.convolve(piece, w5),
                         "convolve63": lambda: fn.convolve(piece, w63)}[w],
            "dask-image": {"gaussian": lambda: sndi.gaussian_filter(piece, 2.0),
                           "convolve5": lambda: sndi.convolve(piece, w5),
                           "convolve63": lambda: sndi.convolve(piece, w63)}[w]}
        for label, call in contenders(c, x, w).items():
            call()
            walls, cpus, syss, totals = [], [], [], []
            for _ in range(repeat):
                cpu0 = c.run(_cpu_seconds)
                with distributed.get_task_stream(client=c) as ts:
                    t0 = time.perf_counter()
                    call()
                    totals.append(time.perf_counter() - t0)
                cpu1 = c.run(_cpu_seconds)
                blocks = _block_tasks(ts.data)
                walls.append(float(np.median(blocks)))
                n = max(len(blocks), 1)
                cpus.append(sum(sum(cpu1[a]) - sum(cpu0[a]) for a in cpu0) / n)
                syss.append(sum(cpu1[a][1] - cpu0[a][1] for a in cpu0) / n)
            with threads(1):
                alone_fns[label]()
                ts_alone = []
                for _ in range(5):
                    t0 = time.perf_counter()
                    alone_fns[label]()
                    ts_alone.append(time.perf_counter() - t0)
            lines.append(
                f"tasks {w} {label}: call {np.median(totals) * 1e3:.0f} ms; block task "
                f"{np.median(walls) * 1e3:.1f} ms wall, worker CPU per block "
                f"{np.median(cpus) * 1e3:.1f} ms (system {np.median(syss) * 1e3:.1f} ms); "
                f"the same filter alone on a "
                f"{piece.shape[0]}^{x.ndim} piece, 1 thread: "
                f"{np.median(ts_alone) * 1e3:.1f} ms (medians of {repeat})")
    return lines


def _block_tasks(stream):
    """Compute seconds of the call's block tasks: the task prefix (name before its token)
    with the most compute time (fastconv-filter or -conv; dask-image's fused
    overlap-filter-trim task), so that getitem, edge and trim tasks are left out."""
    per = {}
    for t in stream:
        name = t["key"][0] if isinstance(t["key"], tuple) else str(t["key"])
        per.setdefault(name.rsplit("-", 1)[0], []).extend(
            s["stop"] - s["start"] for s in t["startstops"] if s["action"] == "compute")
    return max(per.values(), key=sum) if per else [0.0]


# -- out of core --------------------------------------------------------------------------

def out_of_core(rows, cols, chunk, memory_limit, workers=WORKERS, folder=None):
    """Write a rows x cols float32 zarr array, filter it (gaussian_filter sigma 2) into a
    second zarr array on ``workers`` worker processes limited to ``memory_limit`` each,
    check three blocks against scipy.ndimage; prints times and whether any worker died."""
    import shutil
    import tempfile
    import time

    import dask.array as da
    import distributed
    import scipy.ndimage as sndi
    import zarr

    from .. import ndimage as fn
    d = tempfile.mkdtemp(prefix="fastconv-ooc-", dir=folder)
    try:
        with distributed.LocalCluster(n_workers=workers, threads_per_worker=1,
                                      processes=True, memory_limit=memory_limit,
                                      dashboard_address=":0", silence_logs=40) as cluster, \
                distributed.Client(cluster) as cl:
            before = sorted(cl.scheduler_info()["workers"])
            src = da.random.default_rng(0).standard_normal((rows, cols), chunks=chunk,
                                                           dtype=np.float32)
            t0 = time.perf_counter()
            da.to_zarr(src, d + "/in.zarr")
            t1 = time.perf_counter()
            da.to_zarr(fn.gaussian_filter(da.from_zarr(d + "/in.zarr"), 2.0), d + "/out.zarr")
            t2 = time.perf_counter()
            after = sorted(cl.scheduler_info()["workers"])
        print(f"{rows}x{cols} float32 = {rows * cols * 4 / 2**30:.2f} GiB in {chunk}^2 "
              f"chunks, {workers} workers limited to {memory_limit}: source written in "
              f"{t1 - t0:.1f} s, filtered to zarr in {t2 - t1:.1f} s; same workers before "
              f"and after: {before == after}")
        zi = zarr.open_array(d + "/in.zarr", mode="r")
        zo = zarr.open_array(d + "/out.zarr", mode="r")
        for i, j in ((0, 0), (rows // 2, cols // 3), (rows - chunk, cols - chunk)):
            li, lj = max(i - 16, 0), max(j - 16, 0)
            want = sndi.gaussian_filter(np.asarray(zi[li:i + chunk + 16, lj:j + chunk + 16]),
                                        2.0)[i - li:i - li + chunk, j - lj:j - lj + chunk]
            err = float(np.abs(zo[i:i + chunk, j:j + chunk] - want).max())
            print(f"block at ({i}, {j}): max |fastconv - scipy| = {err:.2e}")
    finally:
        shutil.rmtree(d, ignore_errors=True)


def main(argv=None):
    global N, CHUNK, AMM_INTERVAL
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=N)
    parser.add_argument("--chunk", type=int, default=CHUNK)
    parser.add_argument("--workers", type=int, default=WORKERS)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("-k", default="", help="only cases whose name contains this")
    parser.add_argument("--memory", action="store_true")
    parser.add_argument("--scaling", action="store_true")
    parser.add_argument("--tasks", action="store_true",
                        help="where a block task's time goes (see task_report)")
    parser.add_argument("--out-of-core", metavar="ROWSxCOLS",
                        help="only the zarr-to-zarr run (with --chunk, --memory-limit)")
    parser.add_argument("--memory-limit", default="1GiB")
    parser.add_argument("--amm-interval", metavar="TIME",
                        help="the cluster's active-memory-manager interval (Dask's default: "
                             "2s); the same cluster runs both contenders")
    args = parser.parse_args(argv)
    N, CHUNK, AMM_INTERVAL = args.n, args.chunk, args.amm_interval
    if args.out_of_core:
        rows, cols = (int(v) for v in args.out_of_core.lower().split("x"))
        out_of_core(rows, cols, args.chunk, args.memory_limit, args.workers)
        return
    whats = [w for w in ("gaussian", "convolve5", "convolve63") if args.k in w]
    c = client(args.workers)
    start = max(c.run(_rss).values())       # before the input and any kernel
    x = data(c, N, CHUNK)
    cases = [Case("dask", f"{w} {N}^2 chunks {CHUNK} {args.workers}w",
                  (lambda w=w: contenders(c, x, w)), {"dask-image": 3.0}, min_time=0.5)
             for w in whats]
    print(format_table(run_cases(cases, threads=1, repeat=args.repeat)))
    if args.memory:
        print(f"idle worker RSS: {start / 2**20:.0f} MiB with fastconv imported (before any "
              f"kernel ran; input and compiled kernels come on top)")
        for line in memory_report(c, x, whats, args.repeat):
            print(line)
    if args.tasks:
        for line in task_report(c, x, whats, args.repeat):
            print(line)
    if args.scaling:
        import time
        for nw in (1, args.workers):
            cw = client(nw)
            xw = data(cw, N, CHUNK)
            for w in whats:
                fn = contenders(cw, xw, w)["fastconv"]
                fn()
                ts = []
                for _ in range(args.repeat):
                    t0 = time.perf_counter()
                    fn()
                    ts.append(time.perf_counter() - t0)
                print(f"scaling {w} {nw} worker(s): median {np.median(ts) * 1e3:.0f} ms "
                      f"(runs {', '.join(f'{t * 1e3:.0f}' for t in ts)})")


if __name__ == "__main__":
    main()
