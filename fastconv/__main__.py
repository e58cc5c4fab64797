"""``python -m fastconv``: info, bench, tune, cache, warmup (and demo, the README's main job)."""
from __future__ import annotations

import argparse
import importlib
import json
import sys

BENCH_GROUPS = ("direct", "fft", "ndimage", "nn", "layers", "latency", "dask", "auto",
                "cuda")


def _progress(i, n, label):
    width = 30
    done = int(width * i / max(n, 1))
    sys.stderr.write(f"\r[{'#' * done}{'.' * (width - done)}] {i}/{n} {str(label)[:50]:<50}")
    sys.stderr.flush()
    if i == n:
        sys.stderr.write("\n")


def cmd_info(args) -> int:
    import numba
    import numpy as np
    import scipy

    import fastconv
    from fastconv import _jit, _warmup, tuner

    # One tiny parallel call so the threading layer in force is known (a call this small
    # would run the serial twin: the break-even is set to 0 for it).
    with _warmup._parallel_regions():
        fastconv.convolve(np.ones((8, 8), np.float32), np.ones((3, 3), np.float32), "same",
                          method="direct")
    info = tuner.cache_info()
    rows = [
        ("fastconv", fastconv.__version__),
        ("numba", numba.__version__),
        ("numpy", np.__version__),
        ("scipy", scipy.__version__),
        ("threading layer", _jit.threading_layer()),
        ("threads", f"{fastconv.get_num_threads()} (max {numba.config.NUMBA_NUM_THREADS})"),
        ("compiled", _warmup.status()),
        ("tuning mode", fastconv._config.get().tune),
        ("FFT backend", _fft_backend_status()),
        ("tuning cache", info["path"]),
        ("cache entries", f"{info['entries']} ({info['bytes']} bytes), calibrated: "
                          f"{info['calibrated']}"),
        ("machine", f"{info['fingerprint']['cpu']} | {', '.join(info['fingerprint']['isa'])}"),
        ("CUDA", _cuda_status()),
        ("peers", ", ".join(_peers()) or "none installed"),
    ]
    for k, v in rows:
        print(f"{k:>16}: {v}")
    return 0


def _fft_backend_status() -> str:
    """The scipy.fft backend of the FFT methods, why, and what else is installed."""
    from fastconv import _config, _fftsize
    names = _fftsize.fft_backend_names()
    installed = _fftsize.installed_backends()
    how = ("FASTCONV_FFT_BACKEND" if _config.get().fft_backend != "auto"
           else "measured" if installed else "no other installed")
    shown = (names[1] if len(set(names.values())) == 1
             else ", ".join(f"{r}-D {n}" for r, n in names.items()))
    return f"{shown} ({how}; installed: {', '.join(('scipy',) + installed)})"


def _cuda_status() -> str:
    """The GPU fastconv's CUDA kernels would run on, or why there is none."""
    from fastconv._arrays import cuda_problem
    try:
        why = cuda_problem()
    except Exception as exc:  # a broken numba-cuda install
        return f"not available ({type(exc).__name__}: {exc})"
    if why is not None:
        return f"not available: {why}"
    from fastconv._dispatch import device_backend
    f = device_backend("cuda").device_facts()
    if f["cc"] == "sim":
        return "numba's CUDA simulator (NUMBA_ENABLE_CUDASIM=1): kernels run as Python"
    return (f"{f['name']} (cc {f['cc']}, {f.get('sms')} SMs, driver {f['driver']}, "
            f"runtime {f['runtime']}, numba-cuda {f.get('numba_cuda')}, "
            f"CuPy {f.get('cupy', 'not installed')})")


def _peers():
    found = []
    for mod, name in [("cv2", "opencv"), ("torch", "torch"), ("scipy", "scipy")]:
        try:
            m = importlib.import_module(mod)
            found.append(f"{name} {getattr(m, '__version__', '')}")
        except ImportError:
            pass
    return found


def cmd_bench(args) -> int:
    from fastconv.bench import format_table, run_cases
    if args.device == "cuda":
        groups = args.group.split(",") if args.group else ["cuda"]
    else:
        groups = args.group.split(",") if args.group else \
            [g for g in BENCH_GROUPS if g != "cuda"]
    unknown = sorted(set(groups) - set(BENCH_GROUPS))
    if unknown:
        raise SystemExit(f"unknown bench group(s) {unknown}; choose from {BENCH_GROUPS}")
    if "cuda" in groups:
        from fastconv.bench import cases_cuda
        print(cases_cuda.run(quick=args.quick, repeat=args.repeat,
                             progress=None if args.no_progress else _progress))
        groups = [g for g in groups if g != "cuda"]
        if not groups:
            return 0
    cases = []
    for g in groups:
        if g == "auto":
            continue
        try:
            mod = importlib.import_module(f"fastconv.bench.cases_{g}")
        except ImportError as exc:
            print(f"(skipping {g}: {exc})", file=sys.stderr)
            continue
        group_cases = mod.CASES if not args.quick else getattr(mod, "QUICK", mod.CASES[:2])
        cases.extend(group_cases)
    results = run_cases(cases, threads=args.threads, repeat=args.repeat,
                        progress=None if args.no_progress else _progress)
    if not args.no_progress:
        _progress(len(cases), len(cases), "done")
    print(format_table(results))
    if "auto" in groups:
        from fastconv.bench import cases_auto
        # the tuning mode in force (FASTCONV_TUNE; default measure): off or model shows
        # the cost model's choices
        from fastconv import _config
        tune = _config.get().tune
        rows = cases_auto.run(tune, quick=args.quick, threads=args.threads,
                              progress=None if args.no_progress else _progress)
        print()
        print(f"auto-tuner choice quality (tuning mode {tune}):")
        print(cases_auto.format_rows(rows))
    if args.compile and "latency" in groups:
        from fastconv.bench import cases_latency
        n = 3 if args.quick else 5
        rows = cases_latency.first_calls(
            ("float32",) if args.quick else cases_latency.DTYPES, n=n,
            progress=None if args.no_progress else _progress)
        print()
        print(cases_latency.format_first_calls(rows, n))
    if args.compile and set(groups) - {"latency"}:
        from fastconv.bench import cases_direct
        print()
        print(cases_direct.format_compile_times(cases_direct.compile_times()))
    return 0


def _parse_case(text: str):
    """'2048x2048:5x5' -> ((2048, 2048), (5, 5))."""
    try:
        xs, ws = text.split(":")
        x = tuple(int(n) for n in xs.lower().split("x"))
        w = tuple(int(n) for n in ws.lower().split("x"))
    except ValueError:
        raise SystemExit(f"cannot parse shape pair {text!r}; expected e.g. 2048x2048:5x5")
    if len(x) != len(w):
        raise SystemExit(f"{text!r}: input and kernel need the same number of dimensions")
    return x, w


def cmd_tune(args) -> int:
    import numpy as np

    from fastconv import _config
    from fastconv._calibrate import calibrate
    from fastconv._dispatch import decide
    from fastconv._validate import conv_spec
    if args.calibrate:
        fitted = calibrate(progress=_progress)
        _progress(1, 1, "calibrated")
        print(json.dumps(fitted, indent=1))
        if not args.shapes and not args.file:
            return 0
    pairs = [_parse_case(s) for s in args.shapes]
    if args.file:
        with open(args.file) as f:
            pairs += [_parse_case(line.strip()) for line in f
                      if line.strip() and not line.startswith("#")]
    if not pairs:
        print("nothing to tune: give shape pairs like 2048x2048:5x5 or --file", file=sys.stderr)
        return 2
    rng = np.random.default_rng(0)
    with _config.override(tune="measure"):
        for i, (xs, ws) in enumerate(pairs):
            _progress(i, len(pairs), f"{xs} * {ws}")
            x = rng.standard_normal(xs).astype(args.dtype)
            w = rng.standard_normal(ws).astype(args.dtype)
            spec = conv_spec(args.op, x, w, args.mode)
            d = decide(spec, x, w, "auto", force_measure=True)
            sys.stderr.write("\n")
            print(f"{'x'.join(map(str, xs))}:{'x'.join(map(str, ws))} -> {d.method}  " +
                  "  ".join(f"{m} {t * 1e3:.3g} ms" for m, t in sorted(d.times.items())) +
                  f"  (tuning {d.tuning_s:.2f} s)")
    _progress(len(pairs), len(pairs), "done")
    return 0


def cmd_cache(args) -> int:
    from fastconv import tuner
    if args.action == "info":
        print(json.dumps(tuner.cache_info(), indent=1))
    elif args.action == "clear":
        try:
            n = tuner.clear_cache()
        except OSError as exc:
            print(f"cache clear failed: {exc}", file=sys.stderr)
            return 1
        print(f"removed {n} entries")
    elif args.action == "export":
        if not args.path:
            raise SystemExit("cache export needs a PATH")
        try:
            n = tuner.export(args.path)
        except OSError as exc:
            print(f"cache export failed: {exc}", file=sys.stderr)
            return 1
        print(f"exported {n} entries to {args.path}")
    elif args.action == "import":
        if not args.path:
            raise SystemExit("cache import needs a PATH")
        try:
            report = tuner.import_(args.path)
        except (OSError, ValueError) as exc:     # unreadable, or not JSON
            print(f"cache import failed: cannot read {args.path}: {exc}", file=sys.stderr)
            return 1
        print(json.dumps(report, indent=1))
        # a file of which nothing could be used is an error; a partial import is not
        nothing = not (report["accepted"] or report["model_accepted"])
        return 1 if nothing and (report["rejected"] or report["model_rejected"]) else 0
    return 0


def _list(text, convert, name):
    try:
        return tuple(convert(v.strip()) for v in text.split(",") if v.strip())
    except ValueError:
        raise SystemExit(f"--{name}: cannot parse {text!r}")


def cmd_warmup(args) -> int:
    from fastconv import _warmup
    try:
        summary = _warmup.run(_list(args.dtypes, str, "dtypes"), _list(args.ranks, int, "ranks"),
                              progress=None if args.no_progress else _progress)
    except ValueError as exc:
        raise SystemExit(str(exc))
    print(f"compiled {summary['calls']} calls ({summary['skipped']} not applicable) for "
          f"{','.join(summary['dtypes'])} ranks {','.join(map(str, summary['ranks']))} in "
          f"{summary['seconds']} s")
    print(f"compiled: {_warmup.status()}")
    return 0


def cmd_demo(args) -> int:
    from fastconv import demo
    return demo.main(args)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m fastconv", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("info", help="versions, threading layer, threads, cache, CUDA")
    b = sub.add_parser("bench", help="compare fastconv with the installed peers")
    b.add_argument("--group", help=f"comma-separated subset of {','.join(BENCH_GROUPS)}")
    b.add_argument("--threads", type=int, default=2)
    b.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                   help="cuda: the GPU group (fastconv's CUDA kernels against cupyx and "
                        "torch/cuDNN, CUDA events); skipped with a message without a GPU")
    b.add_argument("--repeat", type=int, default=7)
    b.add_argument("--quick", action="store_true", help="two cases per group (the layers group: its own subset)")
    b.add_argument("--no-progress", action="store_true")
    b.add_argument("--compile", action="store_true",
                   help="also first-call JIT times in fresh processes (cold and warm cache)")
    t = sub.add_parser("tune", help="pre-tune shapes into this machine's cache")
    t.add_argument("shapes", nargs="*", help="input:kernel shapes, e.g. 2048x2048:5x5")
    t.add_argument("--file", help="a file with one input:kernel pair per line")
    t.add_argument("--dtype", default="float32")
    t.add_argument("--mode", default="same", choices=("full", "same", "valid"))
    t.add_argument("--op", default="convolve", choices=("convolve", "correlate"))
    t.add_argument("--calibrate", action="store_true",
                   help="fit the cost model's constants to this machine first")
    c = sub.add_parser("cache", help="the tuning cache: info, clear, export, import")
    c.add_argument("action", choices=("info", "clear", "export", "import"))
    c.add_argument("path", nargs="?")
    wu = sub.add_parser("warmup", help="compile every kernel into numba's disk cache")
    wu.add_argument("--dtypes", default="float32,float64", help="comma-separated")
    wu.add_argument("--ranks", default="1,2,3", help="comma-separated array ranks")
    wu.add_argument("--no-progress", action="store_true")
    d = sub.add_parser("demo", help="the classic examples, pictures and a timing table")
    d.add_argument("--out", default="fastconv-demo-output")
    d.add_argument("--quick", action="store_true")
    d.add_argument("--full", action="store_true",
                   help="wait for every kernel to compile and time all of them")
    args = p.parse_args(argv)
    if args.cmd in ("bench", "tune", "warmup", "demo"):
        # They time or compile the kernels themselves: a first call must not run the
        # no-compile tier (_firstcall.py) instead. Subprocesses they start (the first-call
        # timings of bench --compile) keep the user's default.
        from fastconv import _config
        _config.set_first_call("compile")
    return {"info": cmd_info, "bench": cmd_bench, "tune": cmd_tune, "cache": cmd_cache,
            "warmup": cmd_warmup, "demo": cmd_demo}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
