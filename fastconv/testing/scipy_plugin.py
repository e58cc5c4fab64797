"""A pytest plugin that runs SciPy's own tests with fastconv in place of SciPy.

    python -m pytest -p fastconv.testing.scipy_plugin -p no:cacheprovider \\
        --pyargs scipy.signal.tests.test_signaltools scipy.ndimage.tests.test_filters

At configuration time, before any test module is imported (so that their
``from scipy.signal import convolve`` lines bind fastconv's function), the plugin calls
:func:`fastconv.patch_scipy`, and registers each fastconv function in SciPy's array-API
capabilities table under the entry of the SciPy function it replaces (SciPy's tests look
their functions up there when they are collected).

Collection keeps the tests that exercise a patched name (see :func:`exercises`) and
deselects the rest, reported by pytest as "deselected". Options:

``--fastconv-baseline``
    run the same selection on SciPy itself, unpatched (the set that must pass).
``--fastconv-all-tests``
    keep every collected test (also those of SciPy functions that never reach a
    patched name).
"""
from __future__ import annotations

import dis
import inspect
import re
import types

import pytest

from .. import _patch


def pytest_addoption(parser):
    group = parser.getgroup("fastconv", "fastconv in place of scipy")
    group.addoption("--fastconv-baseline", action="store_true",
                    help="do not patch scipy: run the selected tests on scipy itself")
    group.addoption("--fastconv-all-tests", action="store_true",
                    help="run every collected test, not only those using patched names")


_TARGETS = pytest.StashKey[list]()


def pytest_configure(config):
    # What a patch replaces, taken before patching: the selection is the same whether
    # or not this run patches.
    config.stash[_TARGETS] = _patch.targets()
    if config.getoption("fastconv_baseline"):
        return
    _patch.patch_scipy()
    _register_capabilities(config.stash[_TARGETS])


def pytest_unconfigure(config):
    if not config.getoption("fastconv_baseline"):
        _patch.unpatch_scipy()


def pytest_report_header(config):
    if config.getoption("fastconv_baseline"):
        return "fastconv: baseline run, scipy unpatched"
    return "fastconv: scipy.signal and scipy.ndimage patched with fastconv's functions"


def _register_capabilities(targets):
    """SciPy's ``make_xp_test_case(f)`` reads ``xp_capabilities_table[f]`` at import of
    the test module; give each fastconv function the entry of the function it replaces."""
    try:
        from scipy._lib._array_api import xp_capabilities_table
    except ImportError:        # a SciPy without the table: nothing to register
        return
    for _module, _name, original, func in targets:
        entry = xp_capabilities_table.get(original)
        if entry is None:
            entry = xp_capabilities_table.get(inspect.unwrap(original))
        if entry is not None:
            xp_capabilities_table.setdefault(func, entry)


# -- which tests exercise a patched name ----------------------------------------------------

def _global_names(code):
    """Names a code object (and the code nested in it) reads as globals."""
    found = set()
    for ins in dis.get_instructions(code):
        if ins.opname == "LOAD_GLOBAL":
            found.add(ins.argval)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            found |= _global_names(const)
    return found


def patched_names(targets):
    """The patched names, and the names of SciPy functions in the patched modules that
    call one of them through their module's globals (``wiener`` calls ``correlate``)."""
    names = {name for _m, name, _o, _f in targets}
    callers = set()
    for module in {m for m, _n, _o, _f in targets}:
        for attr, value in vars(module).items():
            if (isinstance(value, types.FunctionType)
                    and value.__module__ == module.__name__
                    and _global_names(value.__code__) & names):
                callers.add(attr)
    return names | callers


def _pattern(names):
    # A bare name or an attribute of a scipy namespace (``signal.convolve``,
    # ``ndimage.sobel``), not numpy's ``np.convolve``.
    alt = "|".join(sorted(map(re.escape, names), key=len, reverse=True))
    return re.compile(rf"(?:(?<![\w.])|(?<=signal\.)|(?<=ndimage\.)|(?<=ndi\.))(?:{alt})\b")


def _sources(func, cls, module, seen):
    """The source of ``func`` and of the test module's helpers it reaches (module
    functions and methods of its class, transitively)."""
    func = inspect.unwrap(func)
    if func in seen or not hasattr(func, "__code__"):
        return []
    seen.add(func)
    try:
        out = [inspect.getsource(func)]
    except (OSError, TypeError):
        out = []
    code_names = set(func.__code__.co_names)
    for const in func.__code__.co_consts:
        if isinstance(const, types.CodeType):
            code_names |= set(const.co_names)
    for name in code_names:
        helper = None
        if cls is not None and isinstance(inspect.getattr_static(cls, name, None),
                                          (types.FunctionType, staticmethod, classmethod)):
            helper = getattr(cls, name)
        elif module is not None and isinstance(vars(module).get(name), types.FunctionType):
            helper = vars(module)[name]
        if (helper is not None and module is not None
                and getattr(helper, "__module__", None) == module.__name__):
            out += _sources(helper, cls, module, seen)
    return out


def exercises(item, pattern, functions):
    """True when the test's source (or a test-module helper it calls) names a patched
    function, or one is among its parameters (object or name)."""
    params = getattr(getattr(item, "callspec", None), "params", {})
    for value in params.values():
        values = value if isinstance(value, (list, tuple)) else (value,)
        for v in values:
            try:
                if v in functions:
                    return True
            except TypeError:       # unhashable parameter
                pass
            if isinstance(v, str) and pattern.fullmatch(v):
                return True
    func = getattr(item, "function", None)
    if func is None:
        return False
    module = inspect.getmodule(func)
    text = "\n".join(_sources(func, getattr(item, "cls", None), module, set()))
    return bool(pattern.search(text))


def pytest_collection_modifyitems(config, items):
    if config.getoption("fastconv_all_tests"):
        return
    targets = config.stash[_TARGETS]
    pattern = _pattern(patched_names(targets))
    functions = set()
    for _module, _name, original, func in targets:
        functions.update((original, func))
    keep, drop = [], []
    for item in items:
        (keep if exercises(item, pattern, functions) else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
