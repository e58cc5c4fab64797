"""Put fastconv's functions in place of scipy.signal's and scipy.ndimage's, and take
them out again: for code that calls scipy and cannot be edited.

    fastconv.patch_scipy()          # from now on scipy.signal.convolve is fastconv's
    fastconv.unpatch_scipy()        # scipy's own functions back, exactly
    with fastconv.scipy_patched():  # or only inside a block (also a function decorator)
        ...

What gets replaced: every name of :data:`SIGNAL_NAMES` and ``fastconv.ndimage.__all__``
in the public module (``scipy.signal``, ``scipy.ndimage``) and in each scipy module of the
same package that defines it or lists it in its ``__all__`` (``scipy.signal._signaltools``,
``scipy.ndimage._filters`` and the private re-export modules between them and the
public namespace). So ``scipy.signal.convolve(...)`` and ``from scipy.signal import
convolve`` executed after patching get fastconv's function, and so do scipy's functions
that look the name up in the defining module when they run (``scipy.signal.wiener``
calls ``correlate``). ``choose_conv_method`` is replaced by
:func:`fastconv._compat.scipy_choose_conv_method`, fastconv's choice in scipy's
vocabulary ('direct' or 'fft').

Not replaced: a name bound before patching (``from scipy.signal import convolve`` run
earlier, in user code or in another scipy module such as ``scipy.signal._savitzky_golay``)
keeps scipy's function; it is a plain reference that no patch can reach without
rewriting every module. Patch before importing such code, or call through the module
(``signal.convolve``).

The switches: :func:`patch_scipy` and :func:`unpatch_scipy` are idempotent (two patches
then one unpatch leave scipy unpatched); :func:`scipy_patched` counts its nesting and
only restores when the outermost block exits and no :func:`patch_scipy` is in force.
Restoring puts back the very objects that were there; a name someone else replaced while
patched is left as they set it (with a warning) rather than clobbered.
"""
from __future__ import annotations

import contextlib
import importlib
import sys
import threading
import warnings

__all__ = ["patch_scipy", "unpatch_scipy", "scipy_patched", "scipy_is_patched",
           "SIGNAL_NAMES"]

SIGNAL_NAMES = ("convolve", "correlate", "fftconvolve", "oaconvolve", "convolve2d",
                "correlate2d", "choose_conv_method")

_lock = threading.RLock()
_explicit = False     # patch_scipy() in force
_depth = 0            # open scipy_patched() blocks, all threads together
_saved: list = []     # (module, name, scipy's object, fastconv's object) while patched


def replacements():
    """``{public module name: {name: fastconv function}}``: what a patch puts where."""
    from . import ndimage as fc_ndimage
    from . import signal as fc_signal
    from ._compat import scipy_choose_conv_method
    signal = {n: getattr(fc_signal, n) for n in SIGNAL_NAMES}
    # scipy's choose_conv_method answers 'direct' or 'fft'; fastconv's also 'oa' and
    # 'separable': scipy's name gets fastconv's choice in scipy's two words.
    signal["choose_conv_method"] = scipy_choose_conv_method
    return {
        "scipy.signal": signal,
        "scipy.ndimage": {n: getattr(fc_ndimage, n) for n in fc_ndimage.__all__},
    }


def _targets(public, name):
    """The scipy modules holding ``public.name`` that a patch must reach: the public
    module, the defining module, and modules of the package re-exporting it (``__all__``).
    Other modules that merely imported the function keep it (see the module docstring)."""
    original = getattr(public, name)
    originals = {id(original)}
    inner = original
    while hasattr(inner, "__wrapped__"):      # scipy's array-API delegation wrappers
        inner = inner.__wrapped__
        originals.add(id(inner))
    defining = getattr(inner, "__module__", None)
    prefix = public.__name__ + "."
    found = [public]
    for modname, module in list(sys.modules.items()):
        if module is None or not modname.startswith(prefix) or ".tests" in modname:
            continue
        held = vars(module).get(name)
        if held is None or id(held) not in originals:
            continue
        if modname == defining or name in getattr(module, "__all__", ()):
            found.append(module)
    return found


def targets():
    """``[(module, name, scipy's object, fastconv's function)]``: every replacement a
    patch makes now (computed from scipy's current state; nothing is changed)."""
    found = []
    for public_name, funcs in replacements().items():
        public = importlib.import_module(public_name)
        for name, func in funcs.items():
            for module in _targets(public, name):
                found.append((module, name, vars(module)[name], func))
    return found


def _apply():
    if _saved:
        return
    try:
        for module, name, original, func in targets():
            _saved.append((module, name, original, func))
            setattr(module, name, func)
    except BaseException:
        _restore()          # all or nothing: no half-patched scipy
        raise


def _restore():
    while _saved:
        module, name, original, func = _saved.pop()
        current = vars(module).get(name)
        if current is func:
            setattr(module, name, original)
        elif current is not original:
            warnings.warn(f"{module.__name__}.{name} was replaced by other code while "
                          "fastconv patched scipy; left as that code set it",
                          RuntimeWarning, stacklevel=3)


def patch_scipy():
    """Replace scipy.signal's convolution functions and scipy.ndimage's linear filters by
    fastconv's, until :func:`unpatch_scipy`.

    Replaced: ``scipy.signal.{convolve, correlate, fftconvolve, oaconvolve, convolve2d,
    correlate2d, choose_conv_method}`` and every name in ``fastconv.ndimage.__all__`` in
    ``scipy.ndimage``, in the public modules and in the private modules that define or
    re-export them. Names imported from scipy before the call keep scipy's functions.
    Calling it again while patched does nothing.

    Examples
    --------
    >>> import scipy.signal, fastconv
    >>> fastconv.patch_scipy()
    >>> scipy.signal.convolve is fastconv.convolve
    True
    >>> fastconv.unpatch_scipy()
    >>> scipy.signal.convolve is fastconv.convolve
    False
    """
    global _explicit
    with _lock:
        _explicit = True
        _apply()


def unpatch_scipy():
    """Put scipy's own functions back where :func:`patch_scipy` replaced them (the same
    objects). Does nothing when scipy is not patched; inside a :func:`scipy_patched`
    block the patch stays until the block exits."""
    global _explicit
    with _lock:
        _explicit = False
        if _depth == 0:
            _restore()


def scipy_is_patched():
    """True while scipy.signal/scipy.ndimage hold fastconv's functions."""
    with _lock:
        return bool(_saved)


class scipy_patched(contextlib.ContextDecorator):
    """Context manager (or function decorator) patching scipy for its duration.

    Blocks nest, in one thread or several: scipy is restored when the last open block
    exits, unless :func:`patch_scipy` is in force. The patch is process-wide, so threads
    outside the block see it too.

    Examples
    --------
    >>> import numpy as np, scipy.ndimage, fastconv
    >>> with fastconv.scipy_patched():
    ...     scipy.ndimage.uniform_filter1d(np.arange(5.0), 3)
    array([0.33333333, 1.        , 2.        , 3.        , 3.66666667])
    >>> fastconv.scipy_is_patched()
    False
    """

    def __enter__(self):
        global _depth
        with _lock:
            _depth += 1
            try:
                _apply()
            except BaseException:
                _depth -= 1
                raise
        return self

    def __exit__(self, *exc):
        global _depth
        with _lock:
            _depth -= 1
            if _depth == 0 and not _explicit:
                _restore()
        return False
