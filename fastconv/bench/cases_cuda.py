"""``python -m fastconv bench --device cuda``: fastconv's CUDA kernels against the GPU
anchors of issue 12, on CuPy arrays, float32, timed with CUDA events.

Groups of cases (each fastconv call takes and returns CuPy arrays, on CuPy's stream):

* direct 3x3, 5x5, 7x7, 9x9 on 8192^2 ('same', zero fill): ``fastconv.convolve(...,
  method="direct")`` against ``cupyx.scipy.ndimage.convolve(mode="constant")`` (the same
  sum) and torch/cuDNN ``conv2d`` (``cudnn.benchmark`` on); the 3x3 case also reports
  the share of the HBM roofline (input read once, output written once, at the bandwidth
  from the device's memory clock and bus width);
* separable Gaussian, sigma 1, 2, 4, 8 on 8192^2: ``fastconv.ndimage.gaussian_filter``
  against ``cupyx.scipy.ndimage.gaussian_filter``;
* 31x31, 47x47, 63x63 on 4096^2 ('same'): ``fastconv.fftconvolve`` against
  ``cupyx.scipy.signal.fftconvolve``;
* auto regret: ``method="auto"`` against the best explicit method on a small shape suite;
* first calls: the cold first call of each case (JIT compile and cuFFT plans included),
  reported separately from the steady state.

fastconv gets its kernels as NumPy arrays (its launchers take the small kernel from the
host; a GPU kernel array would add a copy to the host per call), the peers as CuPy
arrays.

Timing: one warm-up call (compile excluded), then ``repeat`` samples, each the CUDA-event
time of back-to-back calls on the current stream; medians. Contenders are interleaved
round by round. Without a GPU, CuPy or the CUDA extra the group is skipped with a message
saying which is missing.
"""
from __future__ import annotations

import statistics
import time

GOALS = {"direct": ("cupyx.ndimage", 2.0), "gaussian": ("cupyx.ndimage", 1.5),
         "fft": ("cupyx.signal", 1.2)}
ROOFLINE_GOAL = 0.60
REGRET_GOAL = 1.10
COLD_GOAL_S = 2.0


def why_not() -> str | None:
    """Why the CUDA group cannot run here (None when it can)."""
    from fastconv._arrays import cuda_problem
    why = cuda_problem()
    if why is not None:
        return why
    try:
        import cupy
    except ImportError:
        return "CuPy is not installed (pip install cupy-cuda13x)"
    from fastconv._dispatch import device_backend
    if device_backend("cuda").SIMULATOR:
        return "numba's CUDA simulator is on (NUMBA_ENABLE_CUDASIM=1): no timings"
    try:
        cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:      # CuPy installed, no driver or device
        return f"CuPy sees no GPU ({exc})"
    return None


def _event_time(fn, number):
    import cupy
    start, stop = cupy.cuda.Event(), cupy.cuda.Event()
    start.record()
    for _ in range(number):
        fn()
    stop.record()
    stop.synchronize()
    return cupy.cuda.get_elapsed_time(start, stop) / 1e3 / number


def measure(fns: dict, repeat: int = 7, min_time: float = 0.01):
    """({label: median seconds}, {label: first-call seconds})."""
    import cupy
    first = {}
    for label, fn in fns.items():
        cupy.cuda.Device().synchronize()
        t0 = time.perf_counter()
        fn()
        cupy.cuda.Device().synchronize()
        first[label] = time.perf_counter() - t0
    number = {}
    for label, fn in fns.items():
        one = _event_time(fn, 1)
        number[label] = max(1, int(min_time / max(one, 1e-6)))
    samples = {label: [] for label in fns}
    for _ in range(repeat):
        for label, fn in fns.items():
            samples[label].append(_event_time(fn, number[label]))
    return {k: statistics.median(v) for k, v in samples.items()}, first


def _torch_conv(x, w):
    import torch
    torch.backends.cudnn.benchmark = True
    xt = torch.as_tensor(x, device="cuda")[None, None]
    wt = torch.as_tensor(w[::-1, ::-1].copy(), device="cuda")[None, None]
    pad = w.shape[0] // 2
    return lambda: torch.nn.functional.conv2d(xt, wt, padding=pad)


def cases(quick: bool = False):
    """[(group, name, {label: fn}, extra)]: the cases, built on the GPU."""
    import cupy
    import cupyx.scipy.ndimage as cnd
    import cupyx.scipy.signal as csig

    import fastconv
    import fastconv.ndimage as fnd
    rng = cupy.random.default_rng(0)
    big = 4096 if quick else 8192
    x = rng.standard_normal((big, big), dtype=cupy.float32)
    out = []
    for k in ((3, 9) if quick else (3, 5, 7, 9)):
        w = rng.standard_normal((k, k), dtype=cupy.float32)
        wh = cupy.asnumpy(w)      # fastconv's kernels take the (small) kernel from the host
        fns = {"fastconv": lambda wh=wh: fastconv.convolve(x, wh, "same", method="direct"),
               "cupyx.ndimage": lambda w=w: cnd.convolve(x, w, mode="constant")}
        try:
            fns["torch/cuDNN"] = _torch_conv(x, cupy.asnumpy(w))
        except Exception:         # torch without CUDA, or not installed
            pass
        out.append(("direct", f"{k}x{k} on {big}^2", fns,
                    {"bytes": 2 * x.nbytes} if k == 3 else {}))
    for s in ((1, 8) if quick else (1, 2, 4, 8)):
        out.append(("gaussian", f"sigma {s} on {big}^2",
                    {"fastconv": lambda s=s: fnd.gaussian_filter(x, s),
                     "cupyx.ndimage": lambda s=s: cnd.gaussian_filter(x, s)}, {}))
    xf = x[:4096, :4096] if big > 4096 else x
    xf = cupy.ascontiguousarray(xf)
    for k in ((31, 63) if quick else (31, 47, 63)):
        w = rng.standard_normal((k, k), dtype=cupy.float32)
        out.append(("fft", f"{k}x{k} on 4096^2",
                    {"fastconv": lambda wh=cupy.asnumpy(w): fastconv.fftconvolve(xf, wh,
                                                                                 "same"),
                     "cupyx.signal": lambda w=w: csig.fftconvolve(xf, w, "same")}, {}))
    return out


REGRET_SUITE = [((1024, 1024), (3, 3)), ((4096, 4096), (5, 5)), ((2048, 2048), (15, 15)),
                ((2048, 2048), (31, 31)), ((1024, 1024), (63, 63)), ((512, 512), (9, 9)),
                ((100_000,), (255,)), ((4_000_000,), (31,))]


def regret(quick: bool = False, repeat: int = 5):
    """[(case, auto method, auto s, best method, best s)]: method='auto' (after tuning)
    against every explicit method the guards allow, timed the same way."""
    import cupy

    import fastconv
    rng = cupy.random.default_rng(1)
    rows = []
    suite = REGRET_SUITE[:4] if quick else REGRET_SUITE
    for xs, ws in suite:
        x = rng.standard_normal(xs, dtype=cupy.float32)
        w = rng.standard_normal(ws, dtype=cupy.float32)
        if len(ws) == 2 and ws[0] >= 15:        # a separable kernel: all four compete
            w = cupy.outer(w[:, 0], w[0, :])
        w = cupy.asnumpy(w)                     # the kernel lives on the host
        with fastconv.tuning("measure"):
            auto = fastconv.explain(x, w, "same").method
        fns = {"auto": lambda: fastconv.convolve(x, w, "same")}
        for m in ("direct", "separable", "fft", "oa"):
            try:
                fastconv.convolve(x, w, "same", method=m)
            except ValueError:                  # not applicable (separable)
                continue
            fns[m] = lambda m=m: fastconv.convolve(x, w, "same", method=m)
        med, _ = measure(fns, repeat=repeat)
        best = min((m for m in med if m != "auto"), key=med.get)
        rows.append((f"{'x'.join(map(str, xs))} * {'x'.join(map(str, ws))}", auto,
                     med["auto"], best, med[best]))
    return rows


def run(quick: bool = False, repeat: int = 7, progress=None) -> str:
    """The whole CUDA group as a printable report (or the reason it was skipped)."""
    why = why_not()
    if why is not None:
        return f"cuda group skipped: {why}"
    from fastconv._dispatch import device_backend
    from fastconv.tuner._model import gpu_rates
    facts = device_backend("cuda").device_facts()
    bandwidth = gpu_rates(facts)[0]
    lines = [f"device: {facts['name']} (cc {facts['cc']}, driver {facts['driver']}, "
             f"{facts.get('sms')} SMs, {bandwidth / 1e9:.0f} GB/s from its memory clock "
             f"and bus), float32, CUDA events, medians of {repeat}",
             f"{'group':<9} {'case':<22} {'fastconv ms':>11}  peers: ms (peer/fastconv, "
             f"goal)   first call s"]
    todo = cases(quick)
    for i, (group, name, fns, extra) in enumerate(todo):
        if progress:
            progress(i, len(todo), f"{group} {name}")
        med, first = measure(fns, repeat=repeat)
        mine = med["fastconv"]
        parts = []
        for label, t in med.items():
            if label == "fastconv":
                continue
            ratio = t / mine
            goal = GOALS.get(group)
            mark = ""
            if goal is not None and goal[0] == label:
                mark = f", goal {goal[1]:g} {'ok' if ratio >= goal[1] else 'MISSED'}"
            parts.append(f"{label} {t * 1e3:.3f} ({ratio:.2f}x{mark})")
        if "bytes" in extra:
            share = extra["bytes"] / mine / bandwidth
            parts.append(f"roofline {share:.0%} (goal {ROOFLINE_GOAL:.0%} "
                         f"{'ok' if share >= ROOFLINE_GOAL else 'MISSED'})")
        cold = first["fastconv"]
        lines.append(f"{group:<9} {name:<22} {mine * 1e3:11.3f}  " + "; ".join(parts) +
                     f"   {cold:.2f} ({'ok' if cold <= COLD_GOAL_S else 'over'} "
                     f"{COLD_GOAL_S:g} s)")
    if progress:
        progress(len(todo), len(todo), "regret")
    rows = regret(quick, repeat=max(3, repeat // 2))
    worst = max(r[2] / r[4] for r in rows)
    lines.append("")
    lines.append(f"auto regret (auto / best explicit), worst {worst:.2f} (goal "
                 f"{REGRET_GOAL:g} {'ok' if worst <= REGRET_GOAL else 'MISSED'}):")
    for case, auto, ta, best, tb in rows:
        lines.append(f"  {case:<26} auto={auto:<9} {ta * 1e3:9.3f} ms   best={best:<9} "
                     f"{tb * 1e3:9.3f} ms   regret {ta / tb:.2f}")
    return "\n".join(lines)
