"""Engines: run a public call over a chunked array, one NumPy call per chunk.

An engine module is imported only when its array kind arrives (``_arrays.engine_for``),
so that ``import fastconv`` never imports Dask.
"""
