"""Is a kernel a product of 1-D kernels?  Rank tests, factors and the tolerance rule.

* ``separable_factors(w, dtype)``: per-axis 1-D factors ``[f0, f1, ...]`` with
  ``w[i0, i1, ...] ~= f0[i0] * f1[i1] * ...``, or None.  First the fibres through the
  largest entry (exact outer products keep every entry to a few ulps, tiny ones too);
  failing that, the SVD: every unfolding (the kernel reshaped to (k_a, rest)) must have
  rank 1 (rank test per axis), the factors are the leading left singular vectors,
  scaled by the kernel's projection.
* ``low_rank_factors(w, dtype)``: a 2-D kernel of numerical rank r as r separable pairs
  ``[[u0, v0], [u1, v1], ...]`` (truncated SVD), or None when r pairs cost as much as the
  direct kernel (r * (k0 + k1) >= k0 * k1).
* Tolerance (``rank_tolerance``): the relative Frobenius residual of the factorisation
  must be <= 16 * eps(dtype), eps of the dtype the convolution computes in; the result of
  the separable passes then differs from the direct method by no more than the direct
  method's own rounding.  Integer kernels (int64) are separable only with exact integer
  factors (e.g. Sobel = [1, 2, 1] x [1, 0, -1]).
* ``require_factors``: the ValueError raised for ``method="separable"`` on a kernel that
  is not separable.
* A kernel with a NaN or Inf is never separable: LAPACK's SVD fails on it ("SVD did not
  converge") or, for some placements of an Inf, never returns, and the residual test
  would be NaN anyway.  ``_finite`` is checked before any factorisation.
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["rank_tolerance", "separable_factors", "low_rank_factors", "require_factors"]


def rank_tolerance(dtype) -> float:
    """Largest relative Frobenius residual accepted for a factorisation in ``dtype``."""
    dt = np.dtype(dtype)
    if dt.kind in "biu":
        return 0.0
    return 16.0 * float(np.finfo(dt).eps)


def _compute_dtype(w, dtype):
    dt = np.dtype(dtype) if dtype is not None else np.asarray(w).dtype
    if dt.kind in "biu":
        return np.dtype(np.int64)
    return dt


def _finite(w) -> bool:
    """Whether every tap of ``w`` is finite (integers always are)."""
    return w.dtype.kind not in "fc" or bool(np.isfinite(w).all())


def separable_factors(w, dtype=None):
    """Per-axis 1-D factors of ``w`` (a list of ``w.ndim`` arrays of ``dtype``), or None
    when ``w`` is not a product of 1-D kernels within ``rank_tolerance(dtype)`` (or holds
    a NaN or Inf)."""
    w = np.asarray(w)
    dt = _compute_dtype(w, dtype)
    if w.ndim == 0 or w.size == 0:
        return None
    if w.ndim == 1:
        return [w.astype(dt)]
    if not _finite(w):       # never hand LAPACK a non-finite matrix (see the docstring)
        return None
    if dt.kind in "iu" or w.dtype.kind in "biu" and dt.kind in "iu":
        return _integer_factors(w.astype(np.int64))
    work = w.astype(np.complex128 if dt.kind == "c" or w.dtype.kind == "c" else np.float64)
    norm = np.linalg.norm(work.ravel())
    if norm == 0:
        return [np.zeros(k, dt) for k in w.shape]
    tol = rank_tolerance(dt)
    pivoted = _pivot_factors(work, tol, norm)
    if pivoted is not None:
        return _finish_factors(pivoted, dt, tol)
    vecs = []
    for a in range(w.ndim):
        unf = np.moveaxis(work, a, 0).reshape(w.shape[a], -1)
        u, s, _ = np.linalg.svd(unf, full_matrices=False)
        if len(s) > 1 and s[1] > tol * s[0]:   # rank test along this axis
            return None
        vecs.append(u[:, 0])
    # w ~= c * u0 (x) u1 (x) ...: c is w's projection on the unit-norm outer product.
    outer = vecs[0]
    for v in vecs[1:]:
        outer = np.multiply.outer(outer, v)
    c = np.vdot(outer.ravel(), work.ravel())
    approx = c * outer
    if np.linalg.norm((approx - work).ravel()) > tol * norm:
        return None
    # Share |c| evenly between the factors (balanced magnitudes round best).
    mag = abs(c) ** (1.0 / w.ndim)
    phase = c / abs(c)
    factors = [v * mag for v in vecs]
    factors[0] = factors[0] * phase
    return _finish_factors(factors, dt, tol, mag)


def _pivot_factors(work, tol, norm):
    """Factors from the fibres through the largest entry (a cross approximation), or None
    when they do not reproduce ``work`` within ``tol``.

    For a kernel that is an exact outer product (a Gaussian, a windowed FIR pair) each
    factor entry is one kernel entry times one scale, so every product of factors equals
    its kernel entry to a few ulps, however small the entry: the SVD's factors are only
    accurate to eps times the largest entry, which loses entries many decades below it
    (scipy's firwin_2d taps span 1e-36 to 0.16)."""
    if not np.isfinite(norm):
        return None
    p = np.unravel_index(int(np.argmax(np.abs(work))), work.shape)
    pivot = work[p]
    nd = work.ndim
    # w ~= prod_a fibre_a / pivot^(nd-1); each fibre takes |pivot|^(-(nd-1)/nd), and the
    # later fibres the conjugate phase, so that their largest entry is real positive.
    scale = abs(pivot) ** (-(nd - 1) / nd)
    phase = pivot / abs(pivot)
    factors = []
    for a in range(nd):
        idx = list(p)
        idx[a] = slice(None)
        f = work[tuple(idx)] * scale
        factors.append(f if a == 0 else f * np.conj(phase))
    approx = factors[0]
    for f in factors[1:]:
        approx = np.multiply.outer(approx, f)
    if not np.linalg.norm((approx - work).ravel()) <= tol * norm:
        return None
    return factors


def _finish_factors(factors, dt, tol, mag=None):
    """Real factors for a real compute dtype (None if the imaginary parts are more than
    rounding), each later factor's largest entry positive, in ``dt``."""
    if dt.kind != "c":
        if mag is None:
            mag = max(float(np.abs(f).max()) for f in factors)
        if np.abs(np.imag(np.concatenate(factors))).max(initial=0) > tol * mag * 4:
            return None
        factors = [np.real(f) for f in factors]
        # signs: each later factor's largest entry positive (a Gaussian stays positive)
        for a in range(1, len(factors)):
            if factors[a][np.argmax(np.abs(factors[a]))] < 0:
                factors[a] = -factors[a]
                factors[0] = -factors[0]
    return [np.ascontiguousarray(f, dtype=dt) for f in factors]


def low_rank_factors(w, dtype=None, max_rank=None):
    """A 2-D kernel as a sum of separable pairs ``[[u, v], ...]`` (w ~= sum u v^T) at its
    numerical rank, or None when that rank does not beat the direct kernel's cost."""
    w = np.asarray(w)
    dt = _compute_dtype(w, dtype)
    if w.ndim != 2 or w.size == 0 or dt.kind in "iu":
        one = separable_factors(w, dt) if w.ndim >= 1 and w.size else None
        return None if one is None else [one]
    if not _finite(w):       # no SVD of a non-finite matrix (see the module docstring)
        return None
    work = w.astype(np.complex128 if dt.kind == "c" or w.dtype.kind == "c" else np.float64)
    u, s, vh = np.linalg.svd(work, full_matrices=False)
    total = float(np.sqrt(np.sum(s ** 2)))
    if total == 0:
        return [[np.zeros(w.shape[0], dt), np.zeros(w.shape[1], dt)]]
    tol = rank_tolerance(dt) * total
    # smallest r whose discarded tail is within the tolerance
    tail = np.sqrt(np.cumsum((s ** 2)[::-1]))[::-1]       # tail[r] = ||s[r:]||
    r = next((i for i in range(1, len(s) + 1) if i == len(s) or tail[i] <= tol), len(s))
    k0, k1 = w.shape
    limit = max_rank if max_rank is not None else len(s)
    if r > limit or r * (k0 + k1) >= k0 * k1:
        return None
    terms = []
    for i in range(r):
        g = math.sqrt(s[i])
        a, b = u[:, i] * g, vh[i] * g
        if dt.kind != "c":
            a, b = np.real(a), np.real(b)
        terms.append([np.ascontiguousarray(a, dtype=dt), np.ascontiguousarray(b, dtype=dt)])
    return terms


def launcher_terms(w, dtype, factors):
    """The separable launchers' factors argument as a list of terms (each a per-axis
    list): the decision's terms, a single term given as a per-axis list, or, when none
    came, the kernel's own factors (``require_factors``)."""
    if factors is None:
        return require_factors(w, dtype)
    if len(factors) and not isinstance(factors[0], (list, tuple)):
        return [list(factors)]
    return factors


def require_factors(w, dtype=None, allow_low_rank=True):
    """Factors for ``method="separable"`` as a list of terms (each a per-axis list), or a
    ValueError that says why the kernel does not qualify."""
    w = np.asarray(w)
    one = separable_factors(w, dtype)
    if one is not None:
        return [one]
    if allow_low_rank and w.ndim == 2:
        terms = low_rank_factors(w, dtype)
        if terms is not None:
            return terms
    if not _finite(w):
        raise ValueError(
            f"method='separable' needs a kernel that is a product of 1-D kernels; the "
            f"kernel of shape {w.shape} holds NaN or Inf, which no factorisation "
            f"represents. Use method='direct', 'fft' or 'auto'.")
    tol = rank_tolerance(_compute_dtype(w, dtype))
    raise ValueError(
        f"method='separable' needs a kernel that is a product of 1-D kernels"
        f"{' (or of low rank, for 2-D)' if w.ndim == 2 and allow_low_rank else ''}; "
        f"the kernel of shape {w.shape} is not (relative residual tolerance {tol:.3g}). "
        f"Use method='direct', 'fft' or 'auto'.")


def _integer_factors(w):
    """Exact integer factors through the fibres of the largest entry, or None."""
    p = np.unravel_index(int(np.argmax(np.abs(w))), w.shape)
    pivot = int(w[p])
    if pivot == 0:
        return [np.zeros(k, np.int64) for k in w.shape]
    fibres = []
    for a in range(w.ndim):
        idx = list(p)
        idx[a] = slice(None)
        fibres.append([int(v) for v in w[tuple(idx)]])
    # exact rank-1 test in Python integers: w * pivot^(N-1) == outer(fibres)
    scale = pivot ** (w.ndim - 1)
    flat = [int(v) * scale for v in w.ravel()]
    prod = [1]
    for f in fibres:
        prod = [a * b for a in prod for b in f]
    if flat != prod:
        return None
    # divide the fibres by pivot^(N-1) (exactly, or give up)
    d = abs(scale)
    sign = 1 if scale > 0 else -1
    out = []
    for f in fibres[1:]:
        g = math.gcd(d, *[abs(v) for v in f]) if any(f) else d
        out.append([v // g for v in f])
        d //= g
    first = fibres[0]
    if d != 1 and any(v % d for v in first):
        return None
    first = [sign * v // d for v in first]
    factors = [first] + out
    if max(abs(v) for f in factors for v in f) >= 2 ** 62:
        return None
    return [np.asarray(f, np.int64) for f in factors]


def ndimage_symmetry(w) -> int:
    """scipy.ndimage's test of 1-D filter weights (ni_filters.c), on the float64 weights:
    +1 symmetric, -1 antisymmetric, 0 neither; odd lengths only, pairs within
    DBL_EPSILON. As in C, a pair whose difference is NaN does not break the symmetry
    (``fabs(NaN) > eps`` is false). Shared by the compiled filter kernels and the NumPy
    passes of the first-call tier, which must take the same formula to give the same
    bits."""
    w = np.asarray(w, dtype=np.float64)
    k = w.shape[0]
    if k % 2 == 0:
        return 0
    c = k // 2
    left, right = w[:c][::-1], w[c + 1:]
    eps = np.finfo(np.float64).eps
    with np.errstate(invalid="ignore", over="ignore"):
        if not np.any(np.abs(right - left) > eps):
            return 1
        if not np.any(np.abs(right + left) > eps):
            return -1
    return 0
