"""The cost model alone (tuning mode "off") against choices measured on the development
machine (docs/guide/autotuning.md has the table)."""
import numpy as np
import pytest

import fastconv
from fastconv import _config, _fftsize
from fastconv.tuner import _model


@pytest.mark.parametrize("n,k,want", [(10_000, 1023, ("fft", "oa")),
                                      (3_000, 1023, ("fft", "oa")),
                                      (10_000, 255, ("direct",)),
                                      (1_000_000, 63, ("direct",)),
                                      (1_000_000, 1023, ("oa",))])
def test_long_1d_kernels(n, k, want):
    """Measured (float32, 'same'): at 10000 x 1023 direct ran 1.8-2.5x slower than FFT,
    its edge columns (a tenth of the work) running a scalar loop; the model took it for
    the faster one before it counted them."""
    x = np.ones(n, np.float32)
    w = np.ones(k, np.float32)
    with _config.override(tune="off"), fastconv.threads(2):
        assert fastconv.explain(x, w, "same").method in want


def test_edge_term_is_1d_only():
    assert _fftsize.cost_direct_edges((10_000,), (1023,)) == 1022 * 1023
    assert _fftsize.cost_direct_edges((50, 40), (5, 3)) == 50 * 2 * 15
    assert _fftsize.cost_direct_edges((5,), (9,)) == 5 * 9

    class Spec:
        out_shape, w_shape, x_shape = (64, 64), (9, 9), (64, 64)
        compute_dtype = np.dtype(np.float32)
    assert _model.work(Spec, "direct", {}) == _fftsize.cost_direct((64, 64), (9, 9))


def test_auto_bench_pick_ratio_times_the_choice_as_a_fixed_method():
    from fastconv.bench import cases_auto
    # label, auto method, auto s, best method, best s, ratio, tuning s, fixed times
    rows = [("a", "direct", 3.0, "oa", 1.0, 3.0, 0.0, {"direct": 1.2, "oa": 1.0}),
            ("b", "oa", 2.0, "oa", 2.0, 1.0, 0.0, {"oa": 2.0, "fft": 2.5})]
    assert cases_auto.pick_ratio(rows[0]) == pytest.approx(1.2)
    s = cases_auto.summarize(rows)
    assert s["worst"] == 3.0 and s["worst_pick"] == pytest.approx(1.2)
    assert s["worst_pick_case"] == "a"
    assert "worst pick 1.20x (a)" in cases_auto.format_rows(rows)
