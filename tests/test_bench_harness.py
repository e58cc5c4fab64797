"""The benchmark harness (fastconv/bench/_harness.py): what a timing sample includes."""
import time

from fastconv.bench._harness import measure


def test_a_sample_leaves_out_the_first_call_after_another_contender():
    # "b" is slow only on its first call after "a" ran (as fastconv's first call after
    # torch's, whose OpenMP workers still spin): the lead-in call takes that, so b's
    # median is its steady time. Without it, b's samples right after a would be ~4x.
    state = {"after_a": False}

    def a():
        state["after_a"] = True
        time.sleep(0.002)

    def b():
        time.sleep(0.012 if state["after_a"] else 0.002)
        state["after_a"] = False

    med, _ = measure({"a": a, "b": b}, repeat=7, min_time=0.004)
    assert med["b"] < 0.005, med
