"""Test helpers shipped with fastconv: :mod:`fastconv.testing.scipy_plugin` runs SciPy's
own test suite with fastconv's functions in place of SciPy's."""
