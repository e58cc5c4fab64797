"""What fastconv says where a scipy drop-in must say what scipy says: warnings and
answers in scipy's vocabulary, kept apart from the computation.

* :func:`warn_fft_nonfinite`: scipy.signal.convolve/correlate with ``method='fft'``
  warn (RuntimeWarning, "Use of fft convolution on input with NAN or inf ...") when the
  input holds NaN or Inf, because scipy's FFT then spreads them over the output.
  fastconv's FFT keeps them local to the outputs whose window holds them, so its
  warning says that instead; the category and the opening words are scipy's, so code
  that filters or expects scipy's warning keeps working.
* :func:`scipy_choose_conv_method`: ``scipy.signal.choose_conv_method`` answers
  'direct' or 'fft'; fastconv's own :func:`fastconv.choose_conv_method` also answers
  'oa' and 'separable'. Under :func:`fastconv.patch_scipy` scipy's name gets this
  translation, so code branching on scipy's two answers sees one of them.
"""
from __future__ import annotations

import warnings

import numpy as np  # noqa: F401  (the doctests' namespace)

from ._finite import all_finite

# fastconv method -> the scipy method of the same family (how the sum is formed).
SCIPY_METHOD = {"direct": "direct", "separable": "direct", "fft": "fft", "oa": "fft"}


def warn_fft_nonfinite(x, w, stacklevel=3, finite=all_finite):
    """Warn as scipy does when ``method='fft'`` meets NaN or Inf in either input
    (``finite``: the check, one that reads GPU arrays on the GPU for device calls)."""
    if not (finite(x) and finite(w)):
        warnings.warn("Use of fft convolution on input with NAN or inf: fastconv keeps "
                      "them local to the outputs whose window holds them (scipy's FFT "
                      "spreads them over the whole output); method='direct' gives the "
                      "same values.", RuntimeWarning, stacklevel=stacklevel)


def scipy_choose_conv_method(in1, in2, mode="full", measure=False):
    """``scipy.signal.choose_conv_method`` answered by fastconv's tuner, in scipy's
    vocabulary: 'fft' where fastconv would run an FFT method ('fft', 'oa'), 'direct'
    where it would sum directly ('direct', 'separable').

    With ``measure=True`` returns ``(method, times)``, ``times`` holding the best measured
    time of each family under scipy's names ('direct', 'fft'), in seconds.

    Examples
    --------
    >>> from ._finite import all_finite
    >>> from fastconv._compat import scipy_choose_conv_method
    >>> scipy_choose_conv_method(np.ones(1000), np.ones(3))
    'direct'
    """
    from .signal import choose_conv_method
    if not measure:
        return SCIPY_METHOD[choose_conv_method(in1, in2, mode)]
    method, times = choose_conv_method(in1, in2, mode, measure=True)
    families: dict = {}
    for method, t in times.items():
        name = SCIPY_METHOD[method]
        families[name] = min(t, families.get(name, t))
    if not families:               # nothing to time (0-d inputs)
        return SCIPY_METHOD[method], families
    return min(families, key=families.get), families
