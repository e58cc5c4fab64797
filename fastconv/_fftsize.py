"""FFT lengths, overlap-add block sizes, flop-like cost estimates and the FFT methods'
numerical guards (integer exactness, overflow headroom), shared by the CPU and CUDA
launchers.

Conventions (per convolved axis): ``n`` input length, ``k`` kernel length, ``m`` output
length.  A single FFT of length ``L`` computes ``L - k + 1`` correct outputs of a sliding
window (overlap-save); the whole-array FFT method needs ``L >= min(c, m) + k - 1`` where
``c`` is the part of the input that the output reads.

The cost functions return "flop-like" units: one unit ~ one real multiply-add of a
vectorised inner loop.  The constants were fitted on the 2-core AVX-512 development
machine (see the crossover table in the package docs); the auto-tuner only compares them
with each other, so only their ratios matter.
"""
from __future__ import annotations

import math
import os
import sys


__all__ = ["fft_workers", "fast_len", "fft_shape", "oa_block_len", "block_len",
           "oa_block_shape", "cost_direct", "cost_direct_edges", "cost_separable",
           "cost_fft", "cost_oa", "OA_CHUNK_BYTES", "integers_exact", "fft_is_exact",
           "may_overflow", "OVERFLOW_MARGIN", "FFT_BACKENDS", "installed_backends",
           "fft_backend_name", "use_fft_backend", "fft_backend_names", "backend_scope",
           "pocketfft_scope", "set_backend_chooser", "time_backends", "choose_backend"]

# Bytes of spectra one overlap-add batch may hold: keeps a batch in L2/L3 and bounds
# the extra memory of overlap-add by O(block) whatever the input size.
OA_CHUNK_BYTES = 8 << 20

# Flop-like weight of one complex butterfly relative to a multiply-add of the direct
# kernel, and the per-element overhead of the FFT path (pad/crop copies, spectral product).
# Fitted so that the model's direct/FFT crossovers match the measured ones (float32,
# 'same', 1 thread, baseline direct kernel at ~5 GMAC/s): 1-D 1e6 k~48 (oa), 1e5 k~96
# (oa); 2-D 512^2 k~13 (fft), 2048^2 k~14 (oa); 3-D 64^3 k~6, 128^3 k~7 (fft).  A faster
# direct kernel moves every crossover up: rescale these two by the speed-up.
_FFT_WEIGHT = 6.25
_FFT_PER_ELEMENT = 15.0


_next_fast_len = None


def fft_workers() -> int:
    """The FFT's ``workers``: fastconv's thread count in this Python thread (numba's).

    While numba is not loaded, nothing can have changed that count from numba's default
    (``fastconv.threads``/``set_num_threads`` load numba, and so does a user's own
    ``numba.set_num_threads``): the default is read here as numba's config computes it,
    without importing numba (0.2-0.3 s of an FFT call's first 0.5 s, measured). The
    FFT launchers need numba only for their direct fallback."""
    if "numba" in sys.modules:
        from ._config import get_num_threads
        return get_num_threads()
    return default_threads()


def default_threads() -> int:
    """numba's ``NUMBA_NUM_THREADS`` as its config sets it at import: the environment
    variable when it holds an integer, else the CPUs this process may run on."""
    try:
        return max(1, int(os.environ["NUMBA_NUM_THREADS"]))
    except (KeyError, ValueError):
        pass
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def fast_len(n: int, real: bool = True) -> int:
    """The smallest length >= n that pocketfft transforms fast (5-smooth, 11 allowed)."""
    global _next_fast_len
    if _next_fast_len is None:      # scipy.fft loads on first use, not at import fastconv
        from scipy.fft import next_fast_len as _next_fast_len
    return _next_fast_len(max(int(n), 1), real)


def fft_shape(core_shape, kshape, out_shape, real=True):
    """Per-axis FFT lengths of the single-transform method: the smaller of the linear
    convolution support (c + k - 1) and the output window span (m + k - 1)."""
    return tuple(fast_len(min(c, m) + k - 1, real)
                 for c, k, m in zip(core_shape, kshape, out_shape))


def _oa_cost_per_output(L: int, k: int) -> float:
    # FFT work per block ~ L log2(2L), shared by the L - k + 1 outputs the block yields.
    return L * math.log2(2 * L) / (L - k + 1)


def oa_block_len(m: int, k: int, real: bool = True, max_len: int | None = None) -> int:
    """FFT length of one overlap-add (overlap-save) block along one axis.

    Starts from scipy's optimum ``L = -K W_{-1}(-1/(2 e K))`` (K = k - 1) and searches the
    fast lengths around it for the lowest cost per output, never past what one block over
    the whole output would need.
    """
    full = fast_len(m + k - 1, real)
    if k <= 1:
        return min(full, fast_len(max_len or 4096, real))
    lo = fast_len(2 * k, real)
    hi = full if max_len is None else min(full, max(lo, fast_len(max_len, real)))
    best, best_cost = hi, _oa_cost_per_output(hi, k) if hi > k - 1 else math.inf
    L = lo
    while L < hi:
        c = _oa_cost_per_output(L, k)
        # Blocks that do not divide the output evenly waste part of the last block.
        nb = math.ceil(m / (L - k + 1))
        c *= nb * (L - k + 1) / m
        if c < best_cost:
            best, best_cost = L, c
        L = fast_len(L + 1, real)
    return best


# pocketfft is fastest on powers of two and 3 * 2**p (measured: a 2048-point float32 rfft
# ran 2-3x faster than 2080-, 2100- or 2160-point ones); blocks use only those lengths.
_BLOCK_LENS = sorted({2 ** p for p in range(3, 27)} | {3 * 2 ** p for p in range(2, 26)})
# Per rank: (block length / kernel length, smallest block length).  Measured on 2-core
# AVX-512 (2 threads, float32): 1-D 1e6 samples 255-4095 taps best at 8-16 k;
# 2-D 2048^2 31^2 and 63^2 best at 384-768 (cache-resident 2-D transforms; whole-image
# FFTs were 2-3x slower); 3-D 128^3 7^3: one whole transform (96-blocks no faster).
_BLOCK_RULE = {1: (8, 1024), 2: (6, 512), 3: (8, 192)}


def block_len(k: int, ndim: int) -> int:
    """FFT length of an overlap-add block along an axis with k kernel taps."""
    factor, smallest = _BLOCK_RULE.get(ndim, (8, 32))
    want = max(factor * int(k), smallest)
    for L in _BLOCK_LENS:
        if L >= want:
            return L
    return fast_len(want)


def oa_block_shape(out_shape, kshape, real=True):
    """Per-axis FFT lengths of overlap-add blocks (see ``_BLOCK_RULE``); an axis whose
    whole output fits one block gets the single-transform length instead."""
    nd = len(out_shape)
    shape = []
    for m, k in zip(out_shape, kshape):
        whole = fast_len(m + k - 1, real)
        L = block_len(k, nd)
        shape.append(whole if L >= m + k - 1 else L)
    return tuple(shape)


# -- cost model ---------------------------------------------------------------------------

def _prod(xs):
    p = 1
    for v in xs:
        p *= int(v)
    return p


def cost_direct(out_shape, kshape) -> float:
    """Multiply-adds of the sliding-window method."""
    return float(_prod(out_shape) * _prod(kshape))


def cost_direct_edges(out_shape, kshape) -> float:
    """Multiply-adds of the direct method's edge columns: per output row, up to k - 1
    columns along the contiguous axis whose windows reach past the data run a scalar
    loop over extended inputs (``direct._edges``) instead of the vectorised interior."""
    m, k = int(out_shape[-1]), int(kshape[-1])
    return float(_prod(out_shape[:-1]) * min(m, max(k - 1, 0)) * _prod(kshape))


def cost_separable(out_shape, kshape, rank: int = 1) -> float:
    """Multiply-adds of ``rank`` fused separable passes (one 1-D pass per axis each)."""
    return float(rank * _prod(out_shape) * sum(int(k) for k in kshape)) + _prod(out_shape)


def _fft_units(shape) -> float:
    n = _prod(shape)
    return n * math.log2(max(n, 2))


def cost_fft(shape, kshape, out_shape=None, real=True) -> float:
    """Flop-like cost of the whole-array FFT method (3 transforms + product + copies).

    ``shape`` is the input shape; ``out_shape`` defaults to the 'full' output.
    """
    if out_shape is None:
        out_shape = tuple(n + k - 1 for n, k in zip(shape, kshape))
    L = fft_shape(shape, kshape, out_shape, real)
    scale = 0.5 if real else 1.0
    return (_FFT_WEIGHT * 3 * scale * _fft_units(L)
            + _FFT_PER_ELEMENT * scale * _prod(L))


def cost_oa(shape, kshape, out_shape=None, block=None, real=True) -> float:
    """Flop-like cost of overlap-add with per-axis FFT lengths ``block``."""
    if out_shape is None:
        out_shape = tuple(n + k - 1 for n, k in zip(shape, kshape))
    if block is None:
        block = oa_block_shape(out_shape, kshape, real)
    nblocks = _prod(math.ceil(m / max(L - k + 1, 1)) for m, L, k in
                    zip(out_shape, block, kshape))
    scale = 0.5 if real else 1.0
    # Two transforms per block (input and inverse); the kernel spectrum is paid once.
    per_block = _FFT_WEIGHT * 2 * scale * _fft_units(block) + _FFT_PER_ELEMENT * scale * _prod(block)
    return nblocks * per_block + _FFT_WEIGHT * scale * _fft_units(block)


# -- numerical guards ---------------------------------------------------------------------

# Headroom below the dtype's largest value kept by the overflow guard (rounding growth
# in the transforms, the complex modulus, the kernel spectrum's own rounding).
OVERFLOW_MARGIN = 64.0


def may_overflow(amax, w, shape, dtype) -> bool:
    """Whether a sum inside the transforms could overflow: every value there is bounded
    by L * (data sum) * (kernel sum) <= L**2 * max|x| * sum|w| with L <= the product of
    2 * (n + k) over the axes (any transform or block length used for this data)."""
    import numpy as np
    if amax == 0:
        return False
    L = 1.0
    for n, k in zip(shape, w.shape):
        L *= 2.0 * (n + k)
    wsum = float(np.abs(w).sum())
    big = float(np.finfo(dtype).max) / OVERFLOW_MARGIN
    return L * L * amax * wsum > big


def integers_exact(xmax, wmax, w, x_shape, x_size, cval, boundary, out_shape) -> bool:
    """Whether FFT correlation of integer data with largest magnitudes ``xmax`` (cval
    included) and ``wmax`` rounds back to the exact result (the CPU launcher's
    ``fft_is_exact`` explains both conditions). Python ints compare exactly; floats (a
    magnitude read on a device) round as float64."""
    import numpy as np
    extended = boundary != "constant" or cval != 0
    terms = w.size if extended else min(x_size, w.size)
    if xmax * wmax * terms > 2 ** np.finfo(np.float64).nmant - 1:
        return False
    if xmax == 0 or wmax == 0:
        return True
    # fft_error_bound's formula, in float64, for this data's magnitude and sizes
    shape = x_shape if out_shape is None else np.maximum(x_shape, out_shape)
    L = max(int(np.prod([n + k - 1 for n, k in zip(shape, w.shape)])), 2)
    wnorm = float(np.linalg.norm(w.ravel().astype(np.float64)))
    err = (np.finfo(np.float64).eps * (4 + 2 * math.log2(L)) * wnorm * math.sqrt(w.size)
           * xmax)
    return err < 0.25


def fft_is_exact(x, w, cval=0, boundary="constant", out_shape=None) -> bool:
    """Whether FFT correlation of integer data rounds back to the exact result.

    Two conditions, both needed:

    * scipy's rule (``choose_conv_method``): the largest possible output magnitude,
      max|x| * max|w| * (terms per output), stays below 2**52 (float64's mantissa).
      ``cval`` counts as an input value. Terms per output: min(x.size, w.size) when the
      data is extended by zeros; w.size when a boundary rule or a fill value extends it
      (an output then reads w.size values, even from an input shorter than the kernel).
    * the transforms' rounding: ``fft_error_bound`` in float64 below 1/4, so that
      rounding to the nearest integer recovers the exact value (scipy's rule alone leaves
      no margin: near 2**52, a 64-tap kernel came back off by one in 15 of 127 outputs).

    Non-integer data always passes (float results are approximate anyway).
    """
    import numpy as np
    x = np.asarray(x)
    w = np.asarray(w)
    if x.dtype.kind not in "biu" and w.dtype.kind not in "biu":
        return True
    if x.size == 0 or w.size == 0:
        return True
    xmax = max(abs(int(x.max())), abs(int(x.min())), abs(int(cval)))
    wmax = max(abs(int(w.max())), abs(int(w.min())))
    return integers_exact(xmax, wmax, w, x.shape, x.size, cval, boundary, out_shape)


# -- scipy.fft backends ---------------------------------------------------------------------
#
# The FFT launchers transform through scipy.fft. Where another scipy.fft backend is
# installed (mkl_fft's or pyFFTW's ``interfaces.scipy_fft``) and transforms faster on this
# machine, fastconv's own calls run inside ``scipy.fft.set_backend(<it>)``: a scope that
# is local to the calling thread and ends with the call, so the user's global backend is
# never changed. Which one, per rank of the convolution (1-D, 2-D, 3-D+: the transforms
# differ, and so does which library wins them - measured: MKL ahead on 1-D blocks, behind
# on whole 2-D and 3-D transforms): ``FASTCONV_FFT_BACKEND`` (auto | scipy | mkl | pyfftw;
# a name holds for every rank), read once; "auto" keeps pocketfft unless another backend
# is installed, and then asks the chooser (the tuner's: a short calibration timed once
# per machine and stored beside the tuning cache; without the tuner, the same calibration
# uncached). The name goes into every tuning key, so timings measured with one backend are
# never served under another. Integer data always transforms with pocketfft:
# ``fft_is_exact``'s error bound is the one measured and documented for it.

FFT_BACKENDS = {"scipy": None,
                "mkl": "mkl_fft.interfaces.scipy_fft",
                "pyfftw": "pyfftw.interfaces.scipy_fft"}
RANKS = (1, 2, 3)

_backend_name = None        # {rank: name}, or None until first asked
_backend_obj = None         # {rank: object for scipy.fft.set_backend (None: pocketfft)}
_chooser = None             # set by the tuner: installed names -> {rank: name}


def installed_backends() -> tuple:
    """The alternative scipy.fft backends importable here (without importing them)."""
    import importlib.util
    found = []
    for name, module in FFT_BACKENDS.items():
        if not isinstance(module, str):
            continue
        try:
            if importlib.util.find_spec(module.split(".")[0]) is not None:
                found.append(name)
        except (ImportError, ValueError):
            pass
    return tuple(found)


def _load_backend(name):
    """The object for scipy.fft.set_backend: None for pocketfft, else the module named
    in ``FFT_BACKENDS`` (an entry may also be a backend object itself)."""
    import importlib
    module = FFT_BACKENDS[name]
    if module is None or not isinstance(module, str):
        return module
    return importlib.import_module(module)


def set_backend_chooser(fn) -> None:
    """Install ``fn(installed_names) -> {rank: name}``, which "auto" asks when an
    alternative backend is installed (the tuner installs its cached calibration)."""
    global _chooser
    _chooser = fn


def _rank(ndim) -> int:
    return min(max(int(ndim), 1), RANKS[-1])


def use_fft_backend(name):
    """Use backend ``name`` (for every rank), or a ``{rank: name}`` dict, for fastconv's
    transforms from now on; None: resolve again from ``FASTCONV_FFT_BACKEND`` on next
    use. Returns the previous setting (for restoring). A backend that cannot be imported
    raises ImportError."""
    global _backend_name, _backend_obj
    old = None if _backend_name is None else dict(_backend_name)
    if name is None:
        _backend_name, _backend_obj = None, None
        return old
    names = name if isinstance(name, dict) else dict.fromkeys(RANKS, name)
    for n in names.values():
        if n not in FFT_BACKENDS:
            raise ValueError(f"fft backend must be one of {tuple(FFT_BACKENDS)}, got {n!r}")
    objs = {r: _load_backend(names[r]) for r in RANKS}
    _backend_name, _backend_obj = {r: names[r] for r in RANKS}, objs
    return old


def fft_backend_name(ndim: int = 1) -> str:
    """The scipy.fft backend fastconv's FFT methods use at rank ``ndim`` (resolved on
    first call)."""
    if _backend_name is None:
        _resolve()
    return _backend_name[_rank(ndim)]


def fft_backend_names() -> dict:
    """{rank: backend name} (resolved on first call)."""
    if _backend_name is None:
        _resolve()
    return dict(_backend_name)


_RESOLVE_LOCK = None


def _resolve():
    """Resolve the backends once (a lock: two threads' first calls would otherwise both
    run the calibration)."""
    global _RESOLVE_LOCK
    if _RESOLVE_LOCK is None:
        import threading
        _RESOLVE_LOCK = threading.Lock()
    with _RESOLVE_LOCK:
        if _backend_name is None:
            _resolve_locked()


def _resolve_locked():
    global _backend_name, _backend_obj
    import warnings
    from . import _config
    want = _config.get().fft_backend       # FASTCONV_FFT_BACKEND, checked there
    names = dict.fromkeys(RANKS, want)
    if want == "auto":
        found = installed_backends()
        names = dict.fromkeys(RANKS, "scipy")
        if found:
            names.update((_chooser or choose_backend)(found))
    objs = {}
    for r in RANKS:
        try:
            objs[r] = _load_backend(names[r])
        except ImportError as exc:
            warnings.warn(f"fastconv: FFT backend {names[r]!r} cannot be imported ({exc}); "
                          f"using scipy's pocketfft", RuntimeWarning, stacklevel=3)
            names[r], objs[r] = "scipy", None
    _backend_name, _backend_obj = names, objs


def backend_scope(ndim: int):
    """Context manager: fastconv's transforms of a rank-``ndim`` convolution inside it
    use the chosen backend (a thread-local scipy.fft scope; a no-op for pocketfft)."""
    if _backend_name is None:
        _resolve()
    obj = _backend_obj[_rank(ndim)]
    if obj is None:
        import contextlib
        return contextlib.nullcontext()
    import scipy.fft
    # only=False: whatever the backend declines (returns NotImplemented for) falls back
    # to scipy's own pocketfft, as outside the scope.
    return scipy.fft.set_backend(obj)


def pocketfft_scope():
    """Context manager: pocketfft inside it, whatever backend is in force around it
    (fastconv's choice, or one the user set globally with scipy.fft.set_global_backend)."""
    import scipy.fft
    return scipy.fft.set_backend("scipy", only=True)


# Calibration shapes per rank: the transforms the FFT and overlap-add methods run most
# (float32, 2 workers), as (input shape, transform shape, axes): 1-D blocks and a long
# signal; 2-D blocks and a whole image; 3-D whole and as 2-D transforms of the planes.
_CALIBRATION = {1: (((64, 8192), (8192,), (1,)), ((1_000_000,), (1_000_000,), (0,))),
                2: (((8, 512, 512), (512, 512), (1, 2)), ((1024, 1024), (1050, 1050), (0, 1))),
                3: (((64, 64, 64), (70, 70, 70), (0, 1, 2)),
                    ((64, 128, 128), (135, 135), (1, 2)))}


def time_backends(names, workers=2, repeat=5) -> dict:
    """{rank: {backend: seconds}} for ``names`` plus "scipy": a forward + inverse real
    transform of every calibration shape of the rank, backends interleaved, median of
    ``repeat`` rounds per shape, summed over the rank's shapes."""
    import time
    import numpy as np
    import scipy.fft as F
    names = ("scipy",) + tuple(n for n in names if n != "scipy")
    objs = {}
    for n in names:
        try:
            objs[n] = _load_backend(n)
        except ImportError:
            pass
    rng = np.random.default_rng(0)
    out = {}
    for rank, shapes in _CALIBRATION.items():
        total = dict.fromkeys(objs, 0.0)
        for xs, s, axes in shapes:
            x = rng.standard_normal(xs).astype(np.float32)
            runs = {n: [] for n in objs}
            for r in range(repeat + 1):           # round 0 plans and warms up
                for n, obj in objs.items():
                    ctx = F.set_backend(obj if obj is not None else "scipy")
                    t0 = time.perf_counter()
                    with ctx:
                        F.irfftn(F.rfftn(x, s=s, axes=axes, workers=workers), s=s,
                                 axes=axes, workers=workers)
                    if r:
                        runs[n].append(time.perf_counter() - t0)
            for n in objs:
                total[n] += float(np.median(runs[n]))
        out[rank] = total
    return out


# A backend must beat pocketfft by this factor at a rank to be chosen there: timings on
# a busy machine swing by 10-20%, and a wrong switch costs more than a missed one.
BACKEND_MARGIN = 0.9


def choose_backend(names, times=None) -> dict:
    """{rank: the fastest of ``names`` and "scipy"} by ``time_backends`` (or given
    ``times``); another backend only when under ``BACKEND_MARGIN`` of pocketfft's time."""
    times = time_backends(names) if times is None else times
    choice = {}
    for rank in RANKS:
        t = times[rank]
        best = min(t, key=t.get)
        ok = best != "scipy" and t[best] < BACKEND_MARGIN * t["scipy"]
        choice[rank] = best if ok else "scipy"
    return choice
