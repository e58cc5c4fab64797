"""Choice quality of ``method="auto"``: over a suite of shapes, the time of auto against
the best fixed method, measured in the same run.

regret = sum(auto time) / sum(best fixed time); also the worst single case. "pick" is the
same ratio with auto's choice timed as a fixed method among the others (its own samples
interleaved with theirs), which measures the choice alone: on a loaded machine the
separately timed auto call can differ from the same method's fixed timing by more than the
choice does. Run ``python -m fastconv.bench.cases_auto [--tune measure|model|off]
[--threads N]``. Methods the cost model
predicts to be more than ``SKIP_FACTOR`` times slower than the best prediction are not
timed (they cannot be the best fixed method by a wide margin; the table says so).
"""
from __future__ import annotations

import argparse
import math
import tempfile
import time

import numpy as np

from ._harness import measure

SKIP_FACTOR = 30.0


def _gauss(taps):
    g = np.exp(-0.5 * ((np.arange(taps) - taps // 2) / max(taps / 6, 0.5)) ** 2)
    return g / g.sum()


def suite(quick: bool = False):
    """[(label, x_shape, kernel factory, dtype)] — 1-D/2-D/3-D, kernels 3..1023."""
    cases = []
    for n in (10_000, 100_000, 1_000_000):
        for k in (3, 15, 63, 255, 1023):
            cases.append((f"1d {n} k{k}", (n,), (k,), "float32", "random"))
    for size, ks in ((256, (3, 9, 31)), (1024, (3, 5, 9, 15, 31, 63)), (2048, (3, 7, 31, 63))):
        for k in ks:
            cases.append((f"2d {size}^2 k{k}", (size, size), (k, k), "float32", "random"))
    for size, k in ((1024, 7), (2048, 19), (2048, 31), (512, 15)):
        cases.append((f"2d {size}^2 gauss{k}", (size, size), (k, k), "float32", "gauss"))
    for size, k in ((64, 3), (64, 5), (64, 7), (128, 3), (128, 7)):
        cases.append((f"3d {size}^3 k{k}", (size,) * 3, (k,) * 3, "float32", "random"))
    for label, xs, ks in (("1d 100000 k63", (100_000,), (63,)),
                          ("1d 1000000 k1023", (1_000_000,), (1023,)),
                          ("2d 1024^2 k5", (1024, 1024), (5, 5)),
                          ("2d 1024^2 k31", (1024, 1024), (31, 31)),
                          ("3d 64^3 k5", (64,) * 3, (5,) * 3)):
        cases.append((label + " f64", xs, ks, "float64", "random"))
    if quick:
        cases = cases[::6]
    return cases


def _make(case, rng):
    label, xs, ks, dtype, kind = case
    x = rng.standard_normal(xs).astype(dtype)
    if kind == "gauss":
        g = _gauss(ks[0])
        w = np.multiply.outer(g, g).astype(dtype)
    else:
        w = rng.standard_normal(ks).astype(dtype)
    return x, w


def run(tune: str = "measure", quick: bool = False, repeat: int = 5, threads: int = 2,
        cache_dir: str | None = None, progress=None):
    """Rows of (label, auto method, auto s, best method, best s, ratio, tuning s)."""
    import fastconv
    from fastconv import _config, tuner
    from fastconv._dispatch import prepare_kernel
    from fastconv._validate import conv_spec
    from fastconv.tuner import _model

    cache_dir = cache_dir or tempfile.mkdtemp(prefix="fastconv-auto-")
    rng = np.random.default_rng(0)
    rows = []
    cases = suite(quick)
    with _config.override(cache_dir=cache_dir, tune=tune), fastconv.threads(threads):
        tuner.clear_cache(memory_only=True)
        for i, case in enumerate(cases):
            if progress:
                progress(i, len(cases), case[0])
            x, w = _make(case, rng)
            spec = conv_spec("convolve", x, w, "same")
            allowed, _ = tuner.candidates(spec, x, prepare_kernel(spec, w))
            pred = {m: _model.predict(spec, m, p) for m, p in allowed.items()}
            best_pred = min(pred.values())
            t0 = time.perf_counter()
            d = fastconv.explain(x, w, "same")          # pays tuning, if any
            tuning = time.perf_counter() - t0
            fns = {"auto": lambda: fastconv.convolve(x, w, "same")}
            for m in allowed:
                if pred[m] <= SKIP_FACTOR * best_pred or m == d.method:
                    fns[m] = lambda m=m: fastconv.convolve(x, w, "same", method=m)
            # auto and every fixed method timed interleaved, so that load on the machine
            # hits them alike
            med, _ = measure(fns, repeat=repeat, min_time=0.01)
            auto = med.pop("auto")
            fixed = med
            best = min(fixed, key=fixed.get)
            rows.append((case[0], d.method, auto, best, fixed[best], auto / fixed[best],
                         tuning, fixed))
    return rows


def pick_ratio(row) -> float:
    """Auto's choice timed as a fixed method / the best fixed method."""
    fixed = row[7]
    return fixed[row[1]] / row[4] if row[1] in fixed else row[5]


def summarize(rows) -> dict:
    total_auto = sum(r[2] for r in rows)
    total_best = sum(r[4] for r in rows)
    worst = max(rows, key=lambda r: r[5])
    picks = [pick_ratio(r) for r in rows]
    worst_pick = max(range(len(rows)), key=picks.__getitem__)
    return {"regret": total_auto / total_best, "worst": worst[5], "worst_case": worst[0],
            "geomean": math.exp(sum(math.log(r[5]) for r in rows) / len(rows)),
            "worst_pick": picks[worst_pick], "worst_pick_case": rows[worst_pick][0],
            "cases": len(rows)}


def format_rows(rows) -> str:
    lines = [f"{'case':<26} {'auto':>9} {'auto ms':>9} {'best':>9} {'best ms':>9} "
             f"{'ratio':>6} {'pick':>6} {'tune s':>7}  all fixed (ms)"]
    for row in rows:
        label, am, at, bm, bt, ratio, tune_s, fixed = row
        allf = " ".join(f"{m}={t * 1e3:.3g}" for m, t in sorted(fixed.items()))
        lines.append(f"{label:<26} {am:>9} {at * 1e3:9.3f} {bm:>9} {bt * 1e3:9.3f} "
                     f"{ratio:6.2f} {pick_ratio(row):6.2f} {tune_s:7.3f}  {allf}")
    s = summarize(rows)
    lines.append(f"regret (sum auto / sum best) = {s['regret']:.3f}; worst case "
                 f"{s['worst']:.2f}x ({s['worst_case']}); geometric mean {s['geomean']:.3f}; "
                 f"worst pick {s['worst_pick']:.2f}x ({s['worst_pick_case']}); "
                 f"{s['cases']} cases")
    return "\n".join(lines)


def dispatch_overhead(repeat: int = 9, calls: int = 20000) -> dict:
    """Microseconds per call of the public API with the direct launcher replaced by a
    no-op: ``auto`` (a cache hit) against an explicit ``method="direct"``, and a plan.
    The difference between the first two is what choosing costs on the hot path."""
    import fastconv
    from fastconv import kernels

    x = np.ones((16, 16), np.float32)
    w = np.ones((3, 3), np.float32)
    fastconv.convolve(x, w, "same")
    plan = fastconv.plan(x, w, "same")
    key = ("correlate", "direct", "cpu")
    saved = kernels.get_launcher(*key)
    kernels._LOADED[key] = lambda *a, **k: None
    try:
        fns = {"auto": lambda: fastconv.convolve(x, w, "same"),
               "explicit direct": lambda: fastconv.convolve(x, w, "same", method="direct"),
               "plan": lambda: plan(x)}
        med, _ = measure(fns, repeat=repeat, min_time=0.02)
    finally:
        kernels._LOADED[key] = saved
    return {k: v * 1e6 for k, v in med.items()}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--tune", default="measure", choices=("measure", "model", "off"))
    p.add_argument("--quick", action="store_true")
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--dispatch", action="store_true",
                   help="only the per-call dispatch overhead (launcher replaced by a no-op)")
    args = p.parse_args(argv)
    if args.dispatch:
        us = dispatch_overhead()
        print("  ".join(f"{k}: {v:.1f} us" for k, v in us.items()) +
              f"  -> auto costs {us['auto'] - us['explicit direct']:.1f} us over an "
              f"explicit method")
        return
    rows = run(args.tune, args.quick, args.repeat, args.threads)
    print(f"tuning mode: {args.tune}")
    print(format_rows(rows))


if __name__ == "__main__":
    main()
