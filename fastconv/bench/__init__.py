"""The benchmark harness behind ``python -m fastconv bench`` and the asv suite.

A :class:`Case` builds zero-argument callables, one per contender (``"fastconv"`` first,
then the peers installed here). :func:`measure` warms every callable once (JIT compile
excluded from the steady state), then times them interleaved, ``repeat`` rounds, and
reports medians; speed is quoted as ratios against the peers timed in the same run.
Case tables live beside this module, one per area (``cases_direct.py``, ...).
"""
from .. import _config

# Benchmarks time the kernels themselves: a first call must compile them, not be served by
# the no-compile tier (_firstcall.py), whether this package is reached through
# ``python -m fastconv bench``, ``python -m fastconv.bench.cases_*`` or asv.
_config.set_first_call("compile")

from ._harness import (Case, Result, format_table, measure, median_time, peer_threads,
                       run_cases)

__all__ = ["Case", "Result", "measure", "median_time", "run_cases", "format_table",
           "peer_threads"]
