"""Conv layers of real networks: fastconv.nn against torch (CPU), forward and backward.

Every family of issue 16, batch 1 and batch 8, float32: ResNet 3x3 layers from 112^2 to
7^2, 1x1 bottlenecks, the stride-2 3x3 and the 1x1 stride-2 projection; MobileNetV2 /
ConvNeXt depthwise 3x3 (stride 1 and 2) and 7x7 and a pointwise 1x1; a wav2vec 2.0-style
1-D front end (512 channels, kernels 10/3/2, strides 5/2/2); a 3-D 3x3x3 layer with 64
channels on 16x56x56; U-Net decoders' ``conv_transpose2d`` with stride 2. Each conv
layer is timed forward (``conv*d``), input gradient (``conv*d_input``) and weight
gradient (``conv*d_weight``) against ``torch.nn.functional`` / ``torch.nn.grad``,
interleaved, medians; ratio = torch / fastconv. ``main`` also reports the peak extra
memory of each call (tracemalloc: NumPy buffers beyond the inputs and the output) against
the limit max(2 x output, 256 MiB), and the methods ``auto`` ran.

Goals (2 threads): forward geo-mean >= 1.0, no layer < 0.7; backward (input and weight
gradients) geo-mean >= 0.8, no layer < 0.5; transposed stride 2 >= 0.8. Reproduce with
(OpenBLAS must pick its own kernel and cache sizes: unset those two variables for the
benchmark command only)::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE PYTHONPATH=. \\
        python -m fastconv.bench.cases_layers [--quick] [--methods] [--only SUBSTR]
"""
from __future__ import annotations

import argparse
import math
import sys
import tracemalloc

import numpy as np

from . import Case, peer_threads, run_cases
from .. import _dispatch
from .. import nn as fnn
from ..kernels.cpu._chunks import clear_scratch

# (family, name, per-image input shape (C, *spatial), weight shape, stride, padding,
#  groups, ops). Ops: "fwd", "dgrad" (input gradient), "wgrad" (weight gradient) of a
# convolution; "tconv" (conv_transpose, weight shape (Cin, O/groups, *k)) with
# output_padding in place of the ops' padding when given as (padding, output_padding).
LAYERS = [
    ("resnet", "3x3 C64 112^2", (64, 112, 112), (64, 64, 3, 3), 1, 1, 1),
    ("resnet", "3x3 C64 56^2", (64, 56, 56), (64, 64, 3, 3), 1, 1, 1),
    ("resnet", "3x3 C128 28^2", (128, 28, 28), (128, 128, 3, 3), 1, 1, 1),
    ("resnet", "3x3 C256 14^2", (256, 14, 14), (256, 256, 3, 3), 1, 1, 1),
    ("resnet", "3x3 C512 7^2", (512, 7, 7), (512, 512, 3, 3), 1, 1, 1),
    ("resnet", "1x1 C256->64 56^2", (256, 56, 56), (64, 256, 1, 1), 1, 0, 1),
    ("resnet", "1x1 C64->256 56^2", (64, 56, 56), (256, 64, 1, 1), 1, 0, 1),
    ("resnet", "3x3 s2 C128 56^2", (128, 56, 56), (128, 128, 3, 3), 2, 1, 1),
    ("resnet", "1x1 s2 C256->512 56^2", (256, 56, 56), (512, 256, 1, 1), 2, 0, 1),
    ("mobile", "dw3x3 C144 56^2", (144, 56, 56), (144, 1, 3, 3), 1, 1, 144),
    ("mobile", "dw3x3 s2 C96 112^2", (96, 112, 112), (96, 1, 3, 3), 2, 1, 96),
    ("mobile", "dw7x7 C96 56^2", (96, 56, 56), (96, 1, 7, 7), 1, 3, 96),
    ("mobile", "1x1 C96->384 56^2", (96, 56, 56), (384, 96, 1, 1), 1, 0, 1),
    ("wav2vec", "k10 s5 C1->512 L16000", (1, 16000), (512, 1, 10), 5, 0, 1),
    ("wav2vec", "k3 s2 C512 L3199", (512, 3199), (512, 512, 3), 2, 0, 1),
    ("wav2vec", "k2 s2 C512 L99", (512, 99), (512, 512, 2), 2, 0, 1),
    ("video", "3x3x3 C64 16x56^2", (64, 16, 56, 56), (64, 64, 3, 3, 3), 1, 1, 1),
]
TRANSPOSED = [
    # (family, name, per-image input, weight (Cin, O, *k), stride, (padding, out_pad))
    ("unet", "T k2 s2 C128->64 56^2", (128, 56, 56), (128, 64, 2, 2), 2, (0, 0)),
    ("unet", "T k4 s2 p1 C64->32 112^2", (64, 112, 112), (64, 32, 4, 4), 2, (1, 0)),
    ("unet", "T k3 s2 p1 op1 C64->32 56^2", (64, 56, 56), (64, 32, 3, 3), 2, (1, 1)),
]
BATCHES = (1, 8)
OPS = ("fwd", "dgrad", "wgrad")
GOALS = {"fwd": (1.0, 0.7), "dgrad": (0.8, 0.5), "wgrad": (0.8, 0.5), "tconv": (0.8, 0.8)}
# Seconds per timing sample, as in cases_nn (torch's OpenMP workers spin on after its
# calls; longer samples amortise that handover).
SAMPLE_S = 0.1
QUICK_NAMES = ("3x3 C128 28^2", "1x1 s2 C256->512 56^2", "dw3x3 C144 56^2",
               "T k2 s2 C128->64 56^2")


def _fns(nd):
    names = {1: "1d", 2: "2d", 3: "3d"}[nd]
    return (getattr(fnn, f"conv{names}"), getattr(fnn, f"conv{names}_input"),
            getattr(fnn, f"conv{names}_weight"), getattr(fnn, f"conv_transpose{names}"))


def _out_spatial(sp, k, stride, padding):
    return tuple((s + 2 * padding - kk) // stride + 1 for s, kk in zip(sp, k))


def _arrays(batch, xs, ws, stride, padding, op, dtype=np.float32):
    """(x, w, grad_output) for the op: data of the layer's shapes."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch,) + tuple(xs)).astype(dtype)
    w = (rng.standard_normal(ws) / math.sqrt(math.prod(ws[1:]))).astype(dtype)
    if op == "tconv":
        return x, w, None
    osp = _out_spatial(xs[1:], ws[2:], stride, padding)
    go = rng.standard_normal((batch, ws[0]) + osp).astype(dtype)
    return x, w, go


def _calls(op, nd, batch, xs, ws, stride, padding, groups, method="auto"):
    """{label: zero-argument callable} for fastconv (``method``) and torch (if found)."""
    x, w, go = _arrays(batch, xs, ws, stride, padding, op)
    fwd, dgrad, wgrad, tconv = _fns(nd)
    if op == "fwd":
        f = lambda: fwd(x, w, stride=stride, padding=padding, groups=groups, method=method)
    elif op == "dgrad":
        f = lambda: dgrad(x.shape, w, go, stride=stride, padding=padding, groups=groups,
                          method=method)
    elif op == "wgrad":
        f = lambda: wgrad(x, w.shape, go, stride=stride, padding=padding, groups=groups,
                          method=method)
    else:
        p, op_ = padding
        f = lambda: tconv(x, w, stride=stride, padding=p, output_padding=op_,
                          groups=groups, method=method)
    fns = {"fastconv": f}
    try:
        import torch
        import torch.nn.functional as F
        import torch.nn.grad as G
    except ImportError:
        return fns
    tx, tw = torch.from_numpy(x), torch.from_numpy(w)
    tn = {1: "1d", 2: "2d", 3: "3d"}[nd]
    if op == "fwd":
        tf = getattr(F, f"conv{tn}")
        fns["torch"] = lambda: tf(tx, tw, stride=stride, padding=padding, groups=groups)
    elif op == "dgrad":
        tg, tgo = getattr(G, f"conv{tn}_input"), torch.from_numpy(go)
        fns["torch"] = lambda: tg(x.shape, tw, tgo, stride=stride, padding=padding,
                                  groups=groups)
    elif op == "wgrad":
        tg, tgo = getattr(G, f"conv{tn}_weight"), torch.from_numpy(go)
        fns["torch"] = lambda: tg(tx, w.shape, tgo, stride=stride, padding=padding,
                                  groups=groups)
    else:
        tf = getattr(F, f"conv_transpose{tn}")
        p, op_ = padding
        fns["torch"] = lambda: tf(tx, tw, stride=stride, padding=p, output_padding=op_,
                                  groups=groups)
    return fns


def points(quick=False, only=None):
    pts = []
    for fam, name, xs, ws, stride, padding, groups in LAYERS:
        for op in OPS:
            for b in BATCHES:
                pts.append((fam, name, op, b, len(xs) - 1, xs, ws, stride, padding, groups))
    for fam, name, xs, ws, stride, padding in TRANSPOSED:
        for b in BATCHES:
            pts.append((fam, name, "tconv", b, len(xs) - 1, xs, ws, stride, padding, 1))
    if quick:
        pts = [p for p in pts if p[1] in QUICK_NAMES and p[3] == 8
               and (p[2] in ("fwd", "tconv") or p[1] == QUICK_NAMES[0])]
    if only:
        pts = [p for p in pts if any(s in f"{p[0]} {p[1]} {p[2]} N{p[3]}"
                                     for s in only.split(","))]
    return pts


def _case(pt):
    fam, name, op, b, nd, xs, ws, stride, padding, groups = pt

    def make():
        return _calls(op, nd, b, xs, ws, stride, padding, groups)
    return Case("layers", f"{name} {op} N{b}", make,
                goals={"torch": GOALS[op][1]}, min_time=SAMPLE_S)


CASES = [_case(p) for p in points()]
QUICK = [_case(p) for p in points(quick=True)]


def peak_extra_bytes(pt, method="auto"):
    """Peak NumPy memory of one call beyond its inputs and output (tracemalloc), and the
    output's bytes; the call is made once before (compile, tune)."""
    fam, name, op, b, nd, xs, ws, stride, padding, groups = pt
    f = _calls(op, nd, b, xs, ws, stride, padding, groups, method)["fastconv"]
    f()
    clear_scratch()              # count the workspace as a first call allocates it
    tracemalloc.start()
    try:
        out = f()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak - out.nbytes, out.nbytes


def methods_run(pt):
    """The layer methods ``auto`` dispatched to in one call (several for calls that run
    more than one correlation: phases of a transposed convolution, groups)."""
    fam, name, op, b, nd, xs, ws, stride, padding, groups = pt
    f = _calls(op, nd, b, xs, ws, stride, padding, groups)["fastconv"]
    seen = []
    real = _dispatch.execute

    def spy(spec, x, w, decision, **kw):
        seen.append(decision.method)
        return real(spec, x, w, decision, **kw)
    _dispatch.execute = spy
    try:
        f()
    finally:
        _dispatch.execute = real
    return sorted(set(seen), key=seen.index)


def _gm(vals):
    return math.exp(sum(math.log(v) for v in vals) / len(vals)) if vals else float("nan")


def summary(results, pts):
    """Per op class: geometric mean and worst ratio against the goals."""
    lines = []
    by = {}
    for pt, r in zip(pts, results):
        ratio = r.ratio("torch")
        if ratio is not None:
            cls = "backward" if pt[2] in ("dgrad", "wgrad") else pt[2]
            by.setdefault(cls, []).append(ratio)
    for cls, vals in by.items():
        gm_goal, worst_goal = GOALS["dgrad" if cls == "backward" else cls]
        gm, worst = _gm(vals), min(vals)
        lines.append(f"{cls:<9} geo-mean {gm:.2f}x (goal {gm_goal}: "
                     f"{'ok' if gm >= gm_goal else 'MISSED'}), worst {worst:.2f}x (goal "
                     f"{worst_goal}: {'ok' if worst >= worst_goal else 'MISSED'}), "
                     f"{len(vals)} cases")
    return "\n".join(lines)


def format_rows(results, pts, extra=None, ran=None):
    head = (f"{'family':<8} {'layer':<28} {'op':<6} {'N':>2} {'torch ms':>9} "
            f"{'fastconv ms':>11} {'ratio':>6}")
    if ran is not None:
        head += f"  {'auto ran':<16}"
    if extra is not None:
        head += f" {'extra MiB':>9} {'limit':>6}"
    lines = [head, "-" * len(head)]
    for i, (pt, r) in enumerate(zip(pts, results)):
        fam, name, op, b = pt[:4]
        t = r.median_s.get("torch")
        f = r.median_s["fastconv"]
        ratio = r.ratio("torch")
        line = (f"{fam:<8} {name:<28} {op:<6} {b:>2} "
                f"{t * 1e3 if t else float('nan'):>9.3f} {f * 1e3:>11.3f} "
                f"{ratio if ratio else float('nan'):>6.2f}")
        if ran is not None:
            line += f"  {'+'.join(ran[i]):<16}"
        if extra is not None:
            ex, outb = extra[i]
            limit = max(2 * outb, 256 * 2**20)
            line += f" {ex / 2**20:>9.1f} {'ok' if ex <= limit else 'OVER':>6}"
        lines.append(line)
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a ~1 minute subset")
    ap.add_argument("--only", help="comma-separated substrings of 'family layer op N8'")
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-memory", action="store_true", help="skip the memory column")
    ap.add_argument("--methods", action="store_true",
                    help="also the peak extra memory of every method, forward only")
    args = ap.parse_args(argv)
    pts = points(args.quick, args.only)
    results = run_cases([_case(p) for p in pts], threads=args.threads,
                        repeat=3 if args.quick and args.repeat == 7 else args.repeat,
                        progress=lambda i, n, c: print(f"[{i + 1}/{n}] {c.name}",
                                                       file=sys.stderr, flush=True))
    with peer_threads(args.threads):        # the thread count the timings ran with
        ran = [methods_run(p) for p in pts]
        extra = None if args.no_memory else [peak_extra_bytes(p) for p in pts]
    print(format_rows(results, pts, extra, ran))
    print()
    print(summary(results, pts))
    if args.methods:
        from ..kernels import methods as _methods
        print("\npeak extra memory (MiB) per method, forward, limit max(2 x output, 256 MiB):")
        for p in pts:
            if p[2] != "fwd":
                continue
            cells = []
            for m in _methods("layer"):
                try:
                    ex, outb = peak_extra_bytes(p, m)
                except ValueError:
                    continue           # the method does not apply (winograd off 3x3 s1)
                limit = max(2 * outb, 256 * 2**20)
                cells.append(f"{m} {ex / 2**20:.1f}{'' if ex <= limit else ' OVER'}")
            print(f"  {p[1]:<28} N{p[3]} " + ", ".join(cells))


if __name__ == "__main__":
    main()
