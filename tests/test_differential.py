"""Differential tests: every public route to a convolution against the naive oracle.

For random 1-D/2-D/3-D shapes (size-1 axes, kernels larger than the input, odd and even
sizes), every mode, every boundary name, float/complex/integer/bool dtypes and array views,
each of these must equal ``reference.correlate_ref`` (float64/complex128 loops):

* a one-shot call with every explicit method that accepts it, and ``auto``;
* a ``fastconv.plan`` for every method, called three times (the later calls reuse the
  plan's kernel spectra), with two different inputs, the last into ``out=``; and a plan
  made from a ``(shape, dtype)`` pair;
* ``fftconvolve`` / ``oaconvolve`` where they apply (convolution, zero fill);
* ``convolve2d`` / ``correlate2d`` and ``fastconv.ndimage.correlate`` / ``convolve``.

Only the public API is used, so the test holds for any internal dispatch. Bounds
(elementwise, against the exact result; eps of the dtype the call computes in, so float32
inputs get float32's eps against the float64 oracle):

  direct      8 eps * sum|w| * max|x|                      (summation rounding)
  separable   direct + 16 eps * ||w||_2 sqrt(k) max|x|       (the rank test's residual,
                                                             docs/guide/methods.md)
  fft, oa     eps (4 + 2 log2 L) ||w||_2 sqrt(k) max|x|      (documented in
              + 4 eps * sum|w| * max|x|                     docs/guide/methods.md; plus
                                                             the final rounding)
  auto        the largest of these (it may pick any method)
  integers    exact, bool too (result dtype np.result_type(in1, in2), as scipy)

max|x| includes the fill value when the boundary is constant.
"""
import math
from dataclasses import dataclass

import numpy as np
import pytest
import scipy.ndimage as sn
import scipy.signal as ss
from hypothesis import HealthCheck, given, settings, strategies as st

import fastconv
import fastconv.ndimage as fnd
from reference import correlate_ref

MODES = ("full", "same", "valid")
METHODS = ("auto", "direct", "fft", "oa", "separable")

# Boundary names -> numpy.pad names (the oracle's), from the table in
# docs/guide/boundaries.md: scipy.signal's names, scipy.ndimage's ("reflect" is numpy's
# "symmetric", "mirror" is numpy's "reflect") and numpy.pad's "edge".
SIGNAL_PAD = {
    "fill": "constant", "pad": "constant", "constant": "constant",
    "grid-constant": "constant",
    "wrap": "wrap", "circular": "wrap", "grid-wrap": "wrap",
    "symm": "symmetric", "symmetric": "symmetric", "reflect": "symmetric",
    "grid-mirror": "symmetric",
    "mirror": "reflect",
    "nearest": "edge", "edge": "edge",
}
SIGNAL2D_NAMES = ("fill", "pad", "wrap", "circular", "symm", "symmetric")
NDIMAGE_PAD = {
    "reflect": "symmetric", "grid-mirror": "symmetric", "mirror": "reflect",
    "nearest": "edge", "wrap": "wrap", "grid-wrap": "wrap",
    "constant": "constant", "grid-constant": "constant",
}

DTYPES = ("float64", "float32", "complex128", "complex64", "int64", "int32", "int16",
          "int8", "uint8", "bool")
X_VIEWS = ("c", "f", "step2", "reversed")     # contiguous, Fortran, strided, negative
W_VIEWS = ("c", "f", "reversed")
MAX_N = {1: 40, 2: 12, 3: 12}                 # input length per axis
MAX_K = {1: 48, 2: 14, 3: 6}                  # kernel length: may exceed the input's
# Largest out.size * w.size drawn: the oracle runs ~3 us per term in Python, so one
# reference costs at most ~60 ms.
ORACLE_TERMS = 20_000


# -- the oracle, per public function ---------------------------------------------------------

def _rev(a):
    return a[(slice(None, None, -1),) * a.ndim]


def _conj(a):
    return np.conj(a) if a.dtype.kind == "c" else a


def valid_swap(x_shape, w_shape):
    """scipy's 'valid' rule: (swap?) or None when neither input is the larger in every
    axis (scipy raises ValueError)."""
    x_ge = all(n >= k for n, k in zip(x_shape, w_shape))
    w_ge = all(k >= n for n, k in zip(x_shape, w_shape))
    if not (x_ge or w_ge):
        return None
    return not x_ge


def signal_window(op, mode, x_shape, w_shape):
    """(out_shape, start) of the correlation with the flipped/conjugated kernel.

    'full' starts k - 1 before the data. 'same' is scipy's crop of the full result:
    convolve/correlate take it from index (k - 1) // 2 of the full output, correlate2d
    from k // 2 (its own centring for even kernels), so start = -(k - 1) + crop."""
    if mode == "full":
        return (tuple(n + k - 1 for n, k in zip(x_shape, w_shape)),
                tuple(-(k - 1) for k in w_shape))
    if mode == "valid":
        return tuple(n - k + 1 for n, k in zip(x_shape, w_shape)), (0,) * len(x_shape)
    crop = [k // 2 if op == "correlate2d" else (k - 1) // 2 for k in w_shape]
    return tuple(x_shape), tuple(-(k - 1) + c for k, c in zip(w_shape, crop))


def signal_reference(op, x, w, mode, pad, cval):
    """Exact ``op(x, w, mode)`` in float64/complex128 with the boundary ``pad`` (numpy.pad
    name), or None where scipy raises ValueError ('valid' with no larger input)."""
    swapped = False
    if mode == "valid":
        swapped = valid_swap(x.shape, w.shape)
        if swapped is None:
            return None
        if swapped:
            x, w = w, x
    kern = _rev(w) if op.startswith("convolve") else _conj(w)
    out_shape, start = signal_window(op, mode, x.shape, w.shape)
    ref = correlate_ref(x, kern, start, out_shape, pad, cval)
    if swapped and op == "correlate":        # scipy undoes the swap: reverse, conjugate
        ref = np.conj(_rev(ref))
    elif swapped and op == "correlate2d":    # ... correlate2d only reverses
        ref = _rev(ref)
    return ref


def ndimage_reference(op, x, w, pad, cval, origins):
    """scipy.ndimage.correlate/convolve: output i reads x[i + j - (k // 2 + origin)];
    convolve reverses the weights and mirrors the origin (shifted by one for even sizes);
    complex weights are conjugated by correlate (as numpy.correlate)."""
    if op == "convolve":
        w = _rev(w)
        origins = [-o - (1 - k % 2) for o, k in zip(origins, w.shape)]
    else:
        w = _conj(w)
    start = tuple(-(k // 2 + o) for k, o in zip(w.shape, origins))
    return correlate_ref(x, w, start, x.shape, pad, cval)


def exact(ref, rt):
    """The oracle's exact integer values in an integer/bool result dtype: wrap-around as
    arithmetic in the narrower type (what scipy's integer arithmetic gives)."""
    if rt == np.bool_:
        return ref != 0
    return np.rint(ref.real).astype(np.int64).astype(rt)


def fft_result_dtype(x, w):
    """fftconvolve/oaconvolve's result dtype (scipy's): each input as scipy.fft takes it
    (bool and integers as float64, float32/complex64 kept), then promoted together;
    but where no axis is longer than 1 in both inputs scipy just multiplies them
    (broadcasting), in their own promoted dtype."""
    if not any(n > 1 and k > 1 for n, k in zip(x.shape, w.shape)):
        return np.result_type(x, w)

    def floated(dt):
        return np.dtype(np.float64) if dt.kind in "biu" else dt
    return np.result_type(floated(x.dtype), floated(w.dtype))


# -- tolerances ---------------------------------------------------------------------------------

def bounds(x, w, out_shape, rt, pad, cval):
    """Elementwise error bound per method (see the module docstring); 0 for integers."""
    if rt.kind in "biu":
        return dict.fromkeys(METHODS, 0.0)
    eps = float(np.finfo(rt).eps)
    xmax = float(np.abs(x).max(initial=0))
    if pad == "constant":
        xmax = max(xmax, abs(complex(cval)))
    wa = np.abs(w.astype(np.complex128)).ravel()
    scale = float(wa.sum()) * xmax
    wnorm = float(np.linalg.norm(wa)) * math.sqrt(w.size) * xmax
    L = max(math.prod(max(n, m) + k - 1 for n, m, k in zip(x.shape, out_shape, w.shape)), 2)
    direct = 8 * eps * scale
    fft = eps * (4 + 2 * math.log2(L)) * wnorm + 4 * eps * scale
    tol = {"direct": direct, "separable": direct + 16 * eps * wnorm, "fft": fft, "oa": fft}
    tol["auto"] = max(tol.values())
    return tol


def check(got, ref, rt, tol, what):
    assert isinstance(got, np.ndarray), what
    assert got.dtype == rt, f"{what}: dtype {got.dtype}, expected {rt}"
    assert got.shape == ref.shape, f"{what}: shape {got.shape}, expected {ref.shape}"
    if rt.kind in "biu":
        want = exact(ref, rt)
        bad = int(np.count_nonzero(got != want))
        assert bad == 0, f"{what}: {bad} of {got.size} integer outputs differ"
        return
    err = float(np.abs(got.astype(np.complex128) - ref).max(initial=0))
    assert err <= tol, f"{what}: max error {err:.3g} > bound {tol:.3g}"


# -- data -------------------------------------------------------------------------------------

def random_array(rng, shape, dt):
    """Random values of dtype ``dt``: floats ~N(0, 3^2), complex with both parts, integers
    small enough that every sum is exact in float64."""
    dt = np.dtype(dt)
    if dt == np.bool_:
        return rng.integers(0, 2, shape).astype(bool)
    if dt.kind in "iu":
        return rng.integers(0 if dt.kind == "u" else -100, 101, shape).astype(dt)
    a = 3 * rng.standard_normal(shape)
    if dt.kind == "c":
        a = a + 3j * rng.standard_normal(shape)
    return a.astype(dt)


def plant(rng, a, value):
    """Set one random entry of ``a`` (a view, written through) to +-``value``."""
    idx = np.unravel_index(int(rng.integers(a.size)), a.shape)
    a[idx] = value if rng.random() < 0.5 else -value


def random_kernel(rng, shape, dt, rank1):
    """A kernel of dtype ``dt``: random, or (``rank1``) an outer product of 1-D factors
    whose products are exact in every dtype (quarter-integers, small integers, 0/1), so
    that it is exactly separable whatever dtype the call computes in."""
    dt = np.dtype(dt)
    if not rank1:
        if dt.kind in "iu":
            lo = 0 if dt.kind == "u" else -10
            w = rng.integers(lo, 11, shape).astype(dt)
        else:
            w = random_array(rng, shape, dt)
        return w
    factors = []
    for k in shape:
        if dt == np.bool_:
            f = rng.integers(0, 2, k).astype(np.float64)
        elif dt.kind in "iu":
            f = rng.integers(0 if dt.kind == "u" else -3, 4, k).astype(np.float64)
        else:
            f = rng.integers(-8, 9, k) / 4
            if dt.kind == "c":
                f = f + 1j * rng.integers(-8, 9, k) / 4
        factors.append(f)
    w = factors[0]
    for f in factors[1:]:
        w = np.multiply.outer(w, f)
    return w.astype(dt)


def view(a_maker, shape, kind):
    """An array of ``shape`` laid out as ``kind`` (its values come from ``a_maker``)."""
    nd = len(shape)
    if kind == "step2":
        return a_maker(tuple(2 * n for n in shape))[(slice(None, None, 2),) * nd]
    a = a_maker(shape)
    if kind == "f":
        return np.asfortranarray(a)
    if kind == "reversed":
        return _rev(a)
    return a


def fill_value(rt, which):
    """One of three fill values suited to the result dtype (0 among them)."""
    if rt == np.bool_:
        return (0, 1, True)[which]
    if rt.kind == "u":
        return (0, 1, 3)[which]
    if rt.kind == "i":
        return (0, 1, -3)[which]
    if rt.kind == "f":
        return (0, 1.5, -2.25)[which]
    return (0, 1.5, complex(1.5, -0.5))[which]


def fit_shapes(x_shape, w_shape, out_of, limit=ORACLE_TERMS):
    """Shrink the longest axis (input or kernel) until the oracle's work fits ``limit``;
    proportions, size-1 axes and kernels longer than the input survive."""
    xs, ws = list(x_shape), list(w_shape)
    while math.prod(out_of(xs, ws)) * math.prod(ws) > limit:
        a = max(range(len(xs)), key=lambda i: max(xs[i], ws[i]))
        if xs[a] >= ws[a]:
            xs[a] = max(1, xs[a] - max(1, xs[a] // 4))
        else:
            ws[a] = max(1, ws[a] - max(1, ws[a] // 4))
    return tuple(xs), tuple(ws)


def _out_size(mode):
    if mode == "full":
        return lambda xs, ws: [n + k - 1 for n, k in zip(xs, ws)]
    return lambda xs, ws: [max(n, k) for n, k in zip(xs, ws)]


# -- strategies ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class SignalCase:
    op: str
    mode: str
    boundary: str
    x_shape: tuple
    w_shape: tuple
    x_dtype: str
    w_dtype: str
    x_view: str
    w_view: str
    rank1: bool
    fill: int
    big: bool
    pair_method: str
    seed: int


@st.composite
def signal_cases(draw):
    nd = draw(st.integers(1, 3))
    ops = ["convolve", "correlate"] + (["convolve2d", "correlate2d"] if nd == 2 else [])
    op = draw(st.sampled_from(ops))
    mode = draw(st.sampled_from(MODES))
    xs = tuple(draw(st.integers(1, MAX_N[nd])) for _ in range(nd))
    ws = tuple(draw(st.integers(1, MAX_K[nd])) for _ in range(nd))
    xs, ws = fit_shapes(xs, ws, _out_size(mode))
    names = SIGNAL2D_NAMES if op.endswith("2d") else tuple(SIGNAL_PAD)
    xdt = draw(st.sampled_from(DTYPES))
    wdt = draw(st.one_of(st.just(xdt), st.sampled_from(DTYPES)))
    return SignalCase(
        op=op, mode=mode, boundary=draw(st.sampled_from(names)), x_shape=xs, w_shape=ws,
        x_dtype=xdt, w_dtype=wdt, x_view=draw(st.sampled_from(X_VIEWS)),
        w_view=draw(st.sampled_from(W_VIEWS)), rank1=draw(st.booleans()),
        fill=draw(st.integers(0, 2)), big=draw(st.booleans()),
        pair_method=draw(st.sampled_from(METHODS)), seed=draw(st.integers(0, 2**32 - 1)))


def separable_expectation(kernel, drawn_rank1):
    """'reject' (ValueError), 'accept', or 'either' (a generic kernel: the library may
    take a low-rank factorisation, which must then be right)."""
    if kernel.ndim == 1:
        return "reject"
    if sum(k > 1 for k in kernel.shape) <= 1 or drawn_rank1:
        return "accept"
    return "either"


def run_checked(fn, expect, what):
    """Call ``fn``; None when it raised the ValueError that ``expect`` allows."""
    if expect == "reject":
        with pytest.raises(ValueError):
            fn()
        return None
    try:
        return fn()
    except ValueError:
        if expect == "either":
            return None
        raise AssertionError(f"{what}: rejected a call it must accept") from None


# -- the differential test -----------------------------------------------------------------------

@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=signal_cases())
def test_every_route_matches_reference(case):
    rng = np.random.default_rng(case.seed)
    xdt, wdt = np.dtype(case.x_dtype), np.dtype(case.w_dtype)
    # Large integers (one entry per array, none in rank-1 kernels: at most one large
    # product per output, every sum still exact in float64) put the call beyond scipy's
    # FFT exactness bound, where explicit fft/oa must fall back to exact arithmetic.
    big = (case.big and xdt in (np.int32, np.int64) and wdt in (np.int32, np.int64)
           and min(math.prod(case.x_shape), math.prod(case.w_shape)) >= 4)
    x = view(lambda s: random_array(rng, s, xdt), case.x_shape, case.x_view)
    x2 = view(lambda s: random_array(rng, s, xdt), case.x_shape, case.x_view)
    w = view(lambda s: random_kernel(rng, s, wdt, case.rank1), case.w_shape, case.w_view)
    if big:
        for a, v in ((x, 2**29), (x2, 2**29)) + (() if case.rank1 else ((w, 2**22),)):
            plant(rng, a, v)
    rt = np.result_type(x, w)
    cval = fill_value(rt, case.fill)
    pad = SIGNAL_PAD[case.boundary]
    kw = dict(boundary=case.boundary, fillvalue=cval)
    what = f"{case.op}(mode={case.mode}, boundary={case.boundary}, {xdt}*{wdt})"

    ref = signal_reference(case.op, x, w, case.mode, pad, cval)
    if case.op.endswith("2d"):
        fn = getattr(fastconv, case.op)
        if ref is None:
            with pytest.raises(ValueError):
                fn(x, w, case.mode, case.boundary, cval)
            return
        swapped = case.mode == "valid" and valid_swap(x.shape, w.shape)
        xi, wi = (w, x) if swapped else (x, w)
        tol = bounds(xi, wi, ref.shape, rt, pad, cval)["auto"]
        check(fn(x, w, case.mode, case.boundary, cval), ref, rt, tol, what)
        return

    fn = getattr(fastconv, case.op)
    if ref is None:
        for m in METHODS:
            with pytest.raises(ValueError):
                fn(x, w, case.mode, m, **kw)
        with pytest.raises(ValueError):
            fastconv.plan(x, w, case.mode, op=case.op, **kw)
        return

    swapped = case.mode == "valid" and valid_swap(x.shape, w.shape)
    xi, wi = (w, x) if swapped else (x, w)
    tol = bounds(xi, wi, ref.shape, rt, pad, cval)
    sep = separable_expectation(wi, case.rank1 and not swapped)

    # One-shot calls, every method; explain and plan accept exactly what the call does.
    accepted = {}
    for m in METHODS:
        expect = sep if m == "separable" else "accept"
        got = run_checked(lambda: fn(x, w, case.mode, m, **kw), expect, f"{what} {m}")
        accepted[m] = "accept" if got is not None else "reject"
        if got is not None:
            check(got, ref, rt, tol[m], f"{what} one-shot method={m}")
        if not swapped:             # explain and plans need in1 the larger (ValueError)
            chosen = run_checked(lambda: fastconv.explain(x, w, case.mode, op=case.op,
                                                          method=m, **kw).method,
                                 accepted[m], f"{what} explain {m}")
            assert chosen is None or chosen in METHODS[1:], (what, m, chosen)

    # scipy.signal.fftconvolve / oaconvolve drop-ins: convolution with zero fill, a
    # float result (integers too) within the FFT bound of that dtype.
    if case.op == "convolve" and pad == "constant" and cval == 0:
        frt = fft_result_dtype(x, w)
        ftol = bounds(xi, wi, ref.shape, frt, pad, 0)["fft"]
        for name in ("fftconvolve", "oaconvolve"):
            check(getattr(fastconv, name)(x, w, case.mode), ref, frt, ftol, f"{what} {name}")

    if swapped:
        for m in METHODS:
            with pytest.raises(ValueError):
                fastconv.plan(x, w, case.mode, op=case.op, method=m, **kw)
        return

    # Plans: three calls each (x, another input, x again); the later calls run on the
    # state the first one left (kernel spectra, factors).
    ref2 = signal_reference(case.op, x2, w, case.mode, pad, cval)
    tol2 = bounds(x2, w, ref2.shape, rt, pad, cval)      # the bound scales with max|x2|
    for m in METHODS:
        p = run_checked(lambda: fastconv.plan(x, w, case.mode, op=case.op, method=m, **kw),
                        accepted[m], f"{what} plan {m}")
        if p is None:
            continue
        for i, (xin, want, t) in enumerate([(x, ref, tol), (x2, ref2, tol2)]):
            check(p(xin), want, rt, t[m], f"{what} plan method={m} call {i + 1}")
        buf = np.full(ref.shape, 7, rt)          # the third call writes into out=
        assert p(x, out=buf) is buf, f"{what} plan method={m}: out= not returned"
        check(buf, ref, rt, tol[m], f"{what} plan method={m} call 3 (out=)")

    # A plan from (shape, dtype) alone: no example data at planning time.
    m = case.pair_method
    p = run_checked(lambda: fastconv.plan((x.shape, x.dtype), w, case.mode, op=case.op,
                                          method=m, **kw),
                    accepted[m], f"{what} plan (shape, dtype) {m}")
    if p is not None:
        for i, (xin, want, t) in enumerate([(x2, ref2, tol2), (x, ref, tol),
                                            (x2, ref2, tol2)]):
            check(p(xin), want, rt, t[m], f"{what} (shape, dtype) plan {m} call {i + 1}")


# -- scipy.ndimage drop-ins ----------------------------------------------------------------------

ND_DTYPES = ("float64", "float32", "complex128", "complex64", "int64", "int32", "int16",
             "uint8")


@st.composite
def ndimage_cases(draw):
    nd = draw(st.integers(1, 3))
    xs = tuple(draw(st.integers(1, MAX_N[nd])) for _ in range(nd))
    ws = tuple(draw(st.integers(1, MAX_K[nd])) for _ in range(nd))
    xs, ws = fit_shapes(xs, ws, lambda a, b: a)
    origins = None
    if draw(st.booleans()):
        origins = tuple(draw(st.integers(-(k // 2), (k - 1) // 2)) for k in ws)
    return dict(op=draw(st.sampled_from(["correlate", "convolve"])), x_shape=xs,
                w_shape=ws, dtype=draw(st.sampled_from(ND_DTYPES)),
                complex_w=draw(st.booleans()), mode=draw(st.sampled_from(tuple(NDIMAGE_PAD))),
                origins=origins, fill=draw(st.integers(0, 2)),
                x_view=draw(st.sampled_from(X_VIEWS)), seed=draw(st.integers(0, 2**32 - 1)))


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=ndimage_cases())
def test_ndimage_matches_reference(case):
    rng = np.random.default_rng(case["seed"])
    dt = np.dtype(case["dtype"])
    if dt.kind in "iu":
        # Integer outputs truncate a float sum: keep every sum an exact integer that fits
        # the dtype (integer weights and fill), so the result is exact.
        hi = 1 if dt == np.uint8 else 20
        x = view(lambda s: rng.integers(0 if dt.kind == "u" else -hi, hi + 1, s).astype(dt),
                 case["x_shape"], case["x_view"])
        w = rng.integers(0 if dt.kind == "u" else -3, 2 if dt.kind == "u" else 4,
                         case["w_shape"]).astype(np.float64)
        cval = (0, 1, 1 if dt.kind == "u" else -2)[case["fill"]]
    else:
        x = view(lambda s: random_array(rng, s, dt), case["x_shape"], case["x_view"])
        w = 3 * rng.standard_normal(case["w_shape"])
        if case["complex_w"] and dt.kind == "c":
            w = w + 3j * rng.standard_normal(case["w_shape"])
        cval = (0, 1.5, complex(1.5, -0.5) if dt.kind == "c" else -2.25)[case["fill"]]
    origins = case["origins"] or (0,) * x.ndim
    pad = NDIMAGE_PAD[case["mode"]]
    ref = ndimage_reference(case["op"], x, w, pad, cval, origins)
    kw = dict(mode=case["mode"], cval=cval)
    if case["origins"] is not None:
        kw["origin"] = list(case["origins"])
    got = getattr(fnd, case["op"])(x, w, **kw)
    rt = np.dtype(np.promote_types(dt, np.complex64)) if w.dtype.kind == "c" else dt
    # Computed in float32 only for float32 data (scipy.ndimage's rule), float64 otherwise;
    # complex data runs as four real filterings (twice the real bound).
    cdt = np.dtype(np.float32 if dt == np.float32 else np.complex64 if dt == np.complex64
                   else np.float64)
    tol = bounds(x, w, x.shape, cdt, pad, cval)["auto"] * (2 if rt.kind == "c" else 1)
    check(got, ref, rt, tol, f"ndimage.{case['op']}({dt}, mode={case['mode']})")


# -- the oracle itself, once against scipy (a second opinion) ------------------------------------

@pytest.mark.parametrize("op", ["convolve", "correlate"])
def test_oracle_agrees_with_scipy_signal(op):
    rng = np.random.default_rng(1)
    shapes = [((7,), (3,)), ((7,), (4,)), ((3,), (8,)), ((5, 6), (2, 3)), ((5, 6), (6, 7)),
              ((4, 5, 3), (2, 2, 3)), ((2, 5), (3, 2)), ((1, 4), (1, 6))]
    for xs, ws in shapes:
        x = rng.standard_normal(xs) + 1j * rng.standard_normal(xs)
        w = rng.standard_normal(ws) + 1j * rng.standard_normal(ws)
        for mode in MODES:
            ref = signal_reference(op, x, w, mode, "constant", 0)
            if ref is None:
                with pytest.raises(ValueError):
                    getattr(ss, op)(x, w, mode, method="direct")
                continue
            want = getattr(ss, op)(x, w, mode, method="direct")
            np.testing.assert_allclose(ref, want, atol=1e-12, err_msg=f"{xs} {ws} {mode}")
    # bool: scipy's result is the logical "any" of the products
    a, b = rng.random(9) > 0.5, rng.random(4) > 0.5
    want = getattr(ss, op)(a, b, "full", method="direct")
    assert want.dtype == np.bool_
    np.testing.assert_array_equal(exact(signal_reference(op, a, b, "full", "constant", 0),
                                        np.dtype(bool)), want)


def test_fft_result_dtype_rule_agrees_with_scipy():
    for a in DTYPES:
        for b in DTYPES:
            for xs, ws in [((5,), (3,)), ((1,), (3,)), ((1, 4), (3, 1)), ((2, 4), (3, 1))]:
                x, w = np.ones(xs, a), np.ones(ws, b)
                assert ss.fftconvolve(x, w).dtype == fft_result_dtype(x, w), (a, b, xs, ws)


@pytest.mark.parametrize("op", ["convolve2d", "correlate2d"])
def test_oracle_agrees_with_scipy_signal_2d(op):
    rng = np.random.default_rng(2)
    for xs, ws in [((6, 7), (3, 4)), ((6, 7), (2, 2)), ((4, 5), (5, 6)), ((1, 5), (3, 1)),
                   ((3, 3), (7, 8))]:
        x = rng.standard_normal(xs) + 1j * rng.standard_normal(xs)
        w = rng.standard_normal(ws) + 1j * rng.standard_normal(ws)
        for mode in MODES:
            for boundary, fv in [("fill", 0), ("fill", 1.5 - 2j), ("wrap", 0), ("symm", 0)]:
                ref = signal_reference(op, x, w, mode, SIGNAL_PAD[boundary], fv)
                if ref is None:
                    with pytest.raises(ValueError):
                        getattr(ss, op)(x, w, mode, boundary, fv)
                    continue
                want = getattr(ss, op)(x, w, mode, boundary, fv)
                np.testing.assert_allclose(ref, want, atol=1e-12,
                                           err_msg=f"{xs} {ws} {mode} {boundary}")


@pytest.mark.parametrize("op", ["correlate", "convolve"])
def test_oracle_agrees_with_scipy_ndimage(op):
    rng = np.random.default_rng(3)
    for xs, ws in [((9,), (4,)), ((9,), (5,)), ((3,), (7,)), ((5, 6), (3, 2)),
                   ((4, 3, 5), (2, 3, 2))]:
        x = rng.standard_normal(xs)
        for wc in (False, True):
            w = rng.standard_normal(ws) + (1j * rng.standard_normal(ws) if wc else 0)
            for mode, pad in NDIMAGE_PAD.items():
                for origins in [(0,) * len(ws), tuple(-(k // 2) for k in ws),
                                tuple((k - 1) // 2 for k in ws)]:
                    ref = ndimage_reference(op, x, w, pad, 1.25, origins)
                    want = getattr(sn, op)(x, w, mode=mode, cval=1.25, origin=list(origins))
                    np.testing.assert_allclose(ref, want, atol=1e-12,
                                               err_msg=f"{xs} {ws} {mode} {origins}")


# -- regressions --------------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["fft", "oa"])
def test_plan_3d_kernel_planes_issue_case(method):
    """Issue 11: a 3-D kernel with <= 8 taps on axis 0 through a Plan: every kernel
    plane's spectrum was cached under one key, so calls after the first reused plane 0's
    spectrum for all planes (max error 82). Too large for the naive oracle: scipy's
    direct method is the reference here."""
    rng = np.random.default_rng(11)
    x = rng.standard_normal((40, 50, 60))
    w = rng.standard_normal((5, 7, 7))
    want = ss.convolve(x, w, "same", method="direct")
    tol = bounds(x, w, want.shape, np.dtype(np.float64), "constant", 0)[method]
    p = fastconv.plan(x, w, "same", method=method)
    for i in range(3):
        err = float(np.abs(p(x) - want).max())
        assert err <= tol, f"call {i + 1}: max error {err:.3g} > {tol:.3g}"


@pytest.mark.parametrize("method", ["fft", "oa"])
@pytest.mark.parametrize("k0", range(1, 9))
def test_plan_3d_kernel_taps_on_axis0(k0, method):
    """Plans over 3-D kernels with 1..8 taps on axis 0 (the plane-by-plane FFT path),
    three calls on two inputs, convolve and correlate, against the oracle."""
    rng = np.random.default_rng(k0)
    xs, ws = (k0 + 3, 6, 7), (k0, 3, 2)
    x1, x2 = rng.standard_normal(xs), rng.standard_normal(xs)
    w = rng.standard_normal(ws)
    for op in ("convolve", "correlate"):
        p = fastconv.plan(x1, w, "same", op=op, method=method)
        for i, xi in enumerate((x1, x2, x1)):
            want = signal_reference(op, xi, w, "same", "constant", 0)
            tol = bounds(xi, w, xs, np.dtype(np.float64), "constant", 0)[method]
            check(p(xi), want, np.dtype(np.float64), tol, f"{op} {method} call {i + 1}")


def test_same_kernel_bytes_other_dtype_do_not_share_memoised_state():
    """A float64 Gaussian and its bytes viewed as int64 are different kernels: a call
    with the second must not reuse what the first left memoised (today method='auto'
    keeps its whole decision, separable factors included, keyed by the kernel's bytes and
    a spec that lacks the kernel dtype, so the int64 view ran with the Gaussian's
    factors). Two shapes on which the cost model picks separable for the Gaussian, so
    the case holds should one of them tip to another method."""
    rng = np.random.default_rng(5)
    for xs, k in [((12, 12, 12), 5), ((40, 40), 11)]:
        x = rng.standard_normal(xs)
        t = np.arange(k) - (k - 1) / 2
        g = np.exp(-t ** 2 / 4.0)
        for _ in xs[1:]:
            g = np.multiply.outer(g, np.exp(-t ** 2 / 4.0))
        gi = g.view(np.int64)
        ref = signal_reference("convolve", x, gi, "valid", "constant", 0)
        tol = bounds(x, gi, ref.shape, np.dtype(np.float64), "constant", 0)["auto"]
        fastconv.convolve(x, g, "valid")
        check(fastconv.convolve(x, gi, "valid"), ref, np.dtype(np.float64), tol,
              f"{xs}: one-shot, int64 view after the float64 kernel")
        fastconv.convolve(x, g, "valid")
        check(fastconv.plan(x, gi, "valid")(x), ref, np.dtype(np.float64), tol,
              f"{xs}: plan, int64 view after the float64 kernel")


# Integer exactness of explicit fft/oa, found by these differential checks (the
# hypothesis draws above stay where the guard is sound; these pin the gaps). The exact
# results exceed what float64 holds, so the reference is Python integer arithmetic.

def test_integer_fft_guard_counts_the_extended_reads():
    """One input sample, an 8-tap kernel, 'same': under every non-constant boundary the
    single output reads x[0] eight times, so it is x[0] * sum(w), odd and above 2**53.
    The guard sees max|x| max|w| * min(1, 8) ~ 2**50 and lets fft/oa round a float64."""
    x = np.array([2**25 + 1], np.int64)
    w = 2**25 + np.array([0, 1, 2, 3, 4, 5, 6, 8], np.int64)
    want = int(x[0]) * sum(int(v) for v in w)
    wrong = [(b, m) for b in ("wrap", "symm", "mirror", "nearest") for m in ("fft", "oa")
             if int(fastconv.convolve(x, w, "same", m, boundary=b)[0]) != want]
    assert not wrong, f"inexact integer results: {wrong}"


def test_integer_fft_exact_inside_the_guard():
    """64 samples and taps with max|x| max|w| * 64 just under 2**52: inside the guard, so
    fft/oa run in float64 and round back, and ~1 output in 8 comes back off by one."""
    rng = np.random.default_rng(0)
    m = 2**23
    x = rng.integers(m // 2, m, 64).astype(np.int64)
    w = rng.integers(m // 2, m, 64).astype(np.int64)
    want = np.convolve(x.astype(object), w.astype(object))
    for method in ("fft", "oa"):
        got = fastconv.convolve(x, w, "full", method)
        bad = sum(int(g) != int(e) for g, e in zip(got, want))
        assert bad == 0, f"{method}: {bad} of {len(want)} outputs inexact"
