"""The auto-tuner: auto time / best fixed method time (a track_ ratio), tuning time, and
the dispatch overhead of a cache hit. Uses a fresh cache directory per run."""
import numpy as np

import fastconv

from ._common import rng, set_threads


class ChoiceQuality:
    timeout = 600
    params = (["measure", "off"],)
    param_names = ["tune"]

    def setup_cache(self):
        from fastconv.bench import cases_auto
        set_threads()
        return {t: cases_auto.summarize(cases_auto.run(t, quick=True, repeat=3))
                for t in ("measure", "off")}

    def track_regret(self, summaries, tune):
        return summaries[tune]["regret"]
    track_regret.unit = "auto/best"

    def track_worst_case(self, summaries, tune):
        return summaries[tune]["worst"]
    track_worst_case.unit = "auto/best"


class Dispatch:
    def setup(self):
        set_threads()
        r = rng()
        self.x = r.standard_normal((32, 32)).astype(np.float32)
        self.w = r.standard_normal((3, 3)).astype(np.float32)
        fastconv.convolve(self.x, self.w, "same")
        self.plan = fastconv.plan(self.x, self.w, "same")

    def time_auto_call_small(self):
        fastconv.convolve(self.x, self.w, "same")

    def time_plan_call_small(self):
        self.plan(self.x)

    def time_direct_call_small(self):
        fastconv.convolve(self.x, self.w, "same", method="direct")
