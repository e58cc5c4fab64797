"""The examples in the public docstrings run and print what they say."""
import doctest
import importlib

import pytest

MODULES = ["fastconv.signal", "fastconv._planapi", "fastconv._fftconvolve", "fastconv._patch",
           "fastconv._compat",
           "fastconv.ndimage", "fastconv.nn"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    try:
        module = importlib.import_module(name)
    except ImportError:
        pytest.skip(f"{name} is not part of this build")
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE
                             | doctest.ELLIPSIS, verbose=False)
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {name}"
