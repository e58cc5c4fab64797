"""The auto-tuner: keys, the on-disk store, guards, the cost model, plans and explain."""
import json
import multiprocessing as mp
import os
import stat
import warnings

import numpy as np
import pytest

import fastconv
from fastconv import _config, _dispatch, _fftsize, tuner
from fastconv._validate import conv_spec
from fastconv.tuner import _key, _model, _store


def decide(spec, x, w, **kw):
    """The dispatcher's decision for method='auto' (what every public call asks)."""
    return _dispatch.decide(spec, x, w, "auto", **kw)


def candidates(spec, x, w):
    return tuner.candidates(spec, x, _dispatch.prepare_kernel(spec, w))


@pytest.fixture
def cache(tmp_path):
    """A private cache directory, a fresh store and memo, measuring switched on."""
    with _config.override(cache_dir=str(tmp_path), tune="measure", tune_budget_s=0.05):
        tuner.clear_cache(memory_only=True)
        _store._warned.clear()
        yield tmp_path
        tuner.clear_cache(memory_only=True)


def spec_of(x, w, mode="same", op="convolve"):
    return conv_spec(op, x, w, mode)


def test_key_is_stable_and_complete():
    x = np.zeros((64, 48), np.float32)
    w = np.zeros((5, 3), np.float32)
    k1 = _key.make_key(spec_of(x, w), "C", threads=2)
    k2 = _key.make_key(spec_of(x.copy(), w.copy()), "C", threads=2)
    assert k1 == k2
    assert k1 == ("convolve|x=64x48|w=5x3|out=64x48|start=-2,-1|float32|same|constant|C|t2|cpu"
                  f"|fft={_fftsize.fft_backend_name(2)}")
    assert _key.make_key(spec_of(x, w), "C", threads=1) != k1
    assert _key.make_key(spec_of(x.astype(np.float64), w), "C", threads=2) != k1
    assert _key.make_key(spec_of(x, w, "full"), "C", threads=2) != k1
    assert _key.layout(np.asfortranarray(np.zeros((3, 4)))) == "F"
    assert _key.layout(np.zeros((4, 4))[::2]) == "S"
    fp = _key.fingerprint()
    for field in ("cpu", "isa", "cores", "threading_layer", "fastconv", "kernels", "numba",
                  "schema"):
        assert field in fp
    assert len(_key.fingerprint_id()) == 16


def test_store_round_trip(cache):
    s = _store.Store(str(cache))
    s.put("k1", {"times": {"direct": 1e-3, "fft": 2e-3}, "choice": "direct"})
    again = _store.Store(str(cache))
    assert again.get("k1")["choice"] == "direct"
    assert again.get("k1")["times"]["fft"] == 2e-3
    data = json.loads(open(s.path).read())
    assert data["header"] == _key.fingerprint()


def test_corrupt_truncated_and_foreign_files_are_ignored(cache):
    s = _store.Store(str(cache))
    s.put("k", {"times": {"direct": 1.0}, "choice": "direct"})
    text = open(s.path).read()
    for bad in [text[: len(text) // 2], "not json", json.dumps({"header": {"schema": 999}}),
                json.dumps({"header": dict(_key.fingerprint(), cpu="other"), "entries": {}})]:
        with open(s.path, "w") as f:
            f.write(bad)
        _store._warned.clear()
        fresh = _store.Store(str(cache))
        with pytest.warns(RuntimeWarning, match="fastconv"):
            assert fresh.get("k") is None
        # ... and the next write rebuilds a valid file
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fresh.put("k2", {"times": {"direct": 1.0}, "choice": "direct"})
        assert _store.Store(str(cache)).get("k2")["choice"] == "direct"
    # a call through the public API never breaks on a corrupt cache
    with open(s.path, "w") as f:
        f.write("{{{")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = fastconv.convolve(np.ones((50, 50), np.float32), np.ones((3, 3), np.float32))
    assert out.shape == (52, 52)


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_read_only_cache_dir(cache):
    os.chmod(cache, stat.S_IRUSR | stat.S_IXUSR)
    try:
        s = _store.Store(str(cache))
        with pytest.warns(RuntimeWarning, match="kept in memory"):
            s.put("k", {"times": {"direct": 1.0}, "choice": "direct"})
        assert s.get("k")["choice"] == "direct"
    finally:
        os.chmod(cache, stat.S_IRWXU)


def test_unwritable_cache_path_never_breaks_a_call(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")          # a file where the cache folder should be
    with _config.override(cache_dir=str(blocker / "sub"), tune="measure",
                          tune_budget_s=0.02):
        tuner.clear_cache(memory_only=True)
        _store._warned.clear()
        with warnings.catch_warnings(record=True) as rec:
            warnings.simplefilter("always")
            out = fastconv.convolve(np.ones((300, 300), np.float32),
                                    np.ones((9, 9), np.float32), "same")
        assert out.shape == (300, 300)
        assert all("fastconv" in str(r.message) for r in rec)
        tuner.clear_cache(memory_only=True)


def _tune_in_process(args):
    cache_dir, n = args
    from fastconv import _config as cfg, _dispatch
    from fastconv._validate import conv_spec
    x = np.ones((64, 64 + n % 2), np.float32)       # two processes share each key
    w = np.ones((3, 3), np.float32)
    spec = conv_spec("convolve", x, w, "same")
    with cfg.override(cache_dir=cache_dir, tune="measure", tune_budget_s=0.02):
        return _dispatch.decide(spec, x, w, "auto", force_measure=True).key


def test_four_processes_tune_at_once(tmp_path):
    ctx = mp.get_context("spawn")
    with ctx.Pool(4) as pool:
        keys = pool.map(_tune_in_process, [(str(tmp_path), n) for n in range(4)])
    assert len(set(keys)) == 2
    with _config.override(cache_dir=str(tmp_path)):
        entries = _store.Store(str(tmp_path)).entries()
    assert set(keys) <= set(entries)          # nobody's write was lost
    files = [p for p in os.listdir(tmp_path)
             if p.startswith("tuning-") and p.endswith(".json")]
    assert len(files) == 1


def test_replay_cache_file(cache, request):
    """A stored decision is replayed without measuring: tests/data holds a cache file
    whose header is rewritten to this machine's fingerprint (the entries are the point)."""
    here = os.path.dirname(__file__)
    with open(os.path.join(here, "data", "tuning-replay.json")) as f:
        data = json.load(f)
    data["header"] = _key.fingerprint()
    old_backend = _fftsize.use_fft_backend("scipy")    # the entries' keys name pocketfft
    request.addfinalizer(lambda: _fftsize.use_fft_backend(old_backend))
    path = cache / f"tuning-{_key.fingerprint_id()}.json"
    path.write_text(json.dumps(data))
    x = np.ones((256, 256), np.float32)
    w = np.random.default_rng(0).standard_normal((7, 7)).astype(np.float32)  # full rank
    with fastconv.threads(2):
        key = tuner.key_for(spec_of(x, w), x, {"direct": {}})
        assert key in data["entries"], key
        d = decide(spec_of(x, w), x, w)
    assert d.reason == "cache"
    assert d.method == data["entries"][key]["choice"]


def test_guard_beats_cached_timing(cache):
    x = np.arange(200 * 200, dtype=np.int64).reshape(200, 200) * 10**6
    w = np.full((5, 5), 10**6, np.int64)
    spec = spec_of(x, w)
    allowed, excluded = candidates(spec, x, w)
    assert "fft" not in allowed and "oa" not in allowed
    assert "exactness" in excluded.get("fft", "") or excluded.get("fft") == "not available"
    # a forged cache entry that says fft won is ignored for this input
    key = tuner.key_for(spec, x, allowed)
    _store.store().put(key, {"times": {"fft": 1e-9, "direct": 1.0}, "choice": "fft"})
    tuner.clear_cache(memory_only=True)
    assert decide(spec, x, w).method == "direct"
    xb = np.ones((20, 20), bool)
    allowed_b = candidates(spec_of(xb, xb[:3, :3]), xb, xb[:3, :3])[0]
    assert "fft" not in allowed_b and "oa" not in allowed_b
    # integer kernels run separably only with exact integer factors
    sobel = np.outer([1, 2, 1], [1, 0, -1]).astype(np.int64)
    xi = np.ones((20, 20), np.int64)
    assert "separable" in candidates(spec_of(xi, sobel), xi, sobel)[0]
    odd = sobel.copy()
    odd[0, 0] = 5
    assert "separable" not in candidates(spec_of(xi, odd), xi, odd)[0]


def test_model_is_monotone():
    x = np.zeros((256, 256), np.float32)
    prev = {}
    for k in (3, 5, 9, 17, 33):
        w = np.zeros((k, k), np.float32)
        spec = spec_of(x, w)
        for m in ("direct", "fft", "separable"):
            t = _model.predict(spec, m, {"factors": [[0]]} if m == "separable" else {})
            if m in ("direct", "separable"):
                assert t > prev.get(m, 0)
            prev[m] = t
    small = _model.predict(spec_of(np.zeros((64, 64), np.float32), np.zeros((5, 5))), "direct", {})
    big = _model.predict(spec_of(np.zeros((512, 512), np.float32), np.zeros((5, 5))), "direct", {})
    assert big > small
    # direct beats fft for tiny kernels, fft beats direct for huge ones
    tiny = spec_of(np.zeros((1024, 1024), np.float32), np.zeros((3, 3), np.float32))
    huge = spec_of(np.zeros((1024, 1024), np.float32), np.zeros((63, 63), np.float32))
    assert _model.predict(tiny, "direct", {}) < _model.predict(tiny, "fft", {})
    assert _model.predict(huge, "direct", {}) > _model.predict(huge, "fft", {})


def test_measurement_is_cached_and_never_repeated(cache):
    x = np.random.default_rng(0).standard_normal((400, 400)).astype(np.float32)
    w = np.random.default_rng(1).standard_normal((15, 15)).astype(np.float32)
    spec = spec_of(x, w)
    d1 = decide(spec, x, w, force_measure=True)
    assert d1.reason == "measured" and d1.times
    d2 = decide(spec, x, w)
    assert d2.reason == "measured"          # the in-process memo
    tuner.clear_cache(memory_only=True)
    d3 = decide(spec, x, w)
    assert d3.reason == "cache" and d3.method == d1.method


def test_tune_off_uses_the_model(cache):
    with _config.override(tune="off"):
        tuner.clear_cache(memory_only=True)
        d = fastconv.explain(np.ones((500, 500), np.float32), np.ones((9, 9), np.float32))
    assert d.reason in ("model", "guard")


def test_export_import(cache, tmp_path_factory):
    s = _store.store()
    s.put("kA", {"times": {"direct": 1.0}, "choice": "direct"})
    path = str(tmp_path_factory.mktemp("x") / "export.json")
    assert tuner.export(path) >= 1
    s.clear()
    report = tuner.import_(path)
    assert report["accepted"] >= 1 and report["rejected"] == 0
    assert _store.store().get("kA")["choice"] == "direct"
    data = json.loads(open(path).read())
    data["header"]["cpu"] = "another cpu"
    open(path, "w").write(json.dumps(data))
    report = tuner.import_(path)
    assert report["accepted"] == 0 and "cpu" in report["reasons"][0]


def test_explain_and_plan():
    x = np.random.default_rng(0).standard_normal((64, 64)).astype(np.float32)
    w = np.random.default_rng(1).standard_normal((5, 5)).astype(np.float32)
    d = fastconv.explain(x, w, "same")
    assert d.method in ("direct", "fft", "oa", "separable")
    assert "method:" in str(d)
    assert fastconv.explain(x, w, method="direct").reason == "explicit"
    p = fastconv.plan(x, w, "same")
    np.testing.assert_allclose(p(x), fastconv.convolve(x, w, "same"), rtol=1e-5, atol=1e-5)
    out = np.empty((64, 64), np.float32)
    assert p(x * 2, out=out) is out
    np.testing.assert_allclose(out, 2 * fastconv.convolve(x, w, "same"), rtol=1e-5, atol=1e-4)
    with pytest.raises(ValueError, match="shape"):
        p(np.zeros((10, 10), np.float32))
    pf = fastconv.plan(x, w, "same", method="fft")       # spectrum kept between calls
    for scale in (1, 3):
        np.testing.assert_allclose(pf(x * scale), fastconv.convolve(x * scale, w, "same"),
                                   rtol=1e-4, atol=1e-4 * scale)
    assert pf.decision.params["spectra"]
    pc = fastconv.plan(((64, 64), np.float32), w, "full", op="correlate")
    np.testing.assert_allclose(pc(x), fastconv.correlate(x, w), rtol=1e-5, atol=1e-4)


def test_cli_cache_and_tune(cache, capsys):
    from fastconv.__main__ import main
    assert main(["tune", "128x128:5x5", "--dtype", "float32"]) == 0
    assert "128x128:5x5 ->" in capsys.readouterr().out
    assert main(["cache", "info"]) == 0
    assert '"entries": 1' in capsys.readouterr().out
    assert main(["cache", "clear"]) == 0


def test_hot_path_follows_thread_count():
    x = np.ones((32, 32), np.float32)
    w = np.ones((3, 3), np.float32)
    fastconv.convolve(x, w, "same")
    reader = tuner._threads
    assert reader() == fastconv.get_num_threads()
    with fastconv.threads(1):
        assert reader() == 1
        np.testing.assert_allclose(fastconv.convolve(x, w, "same")[1:-1, 1:-1], 9)


def test_conv_layers_use_the_same_tuner(cache):
    from fastconv import nn
    from fastconv.kernels.cpu import nn as knn
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 8, 40, 40)).astype(np.float32)
    w = rng.standard_normal((16, 8, 3, 3)).astype(np.float32)
    key = "conv|" + "|".join(str(v) for v in knn.layer_key(
        (2, 8, 1, 40, 40), (16, 8, 1, 3, 3), (1, 1, 1), (1, 1, 1), 1, np.float32))
    method, reason, info = tuner.choose_custom(
        key, knn.layer_costs((2, 8, 1, 40, 40), (16, 8, 1, 3, 3), (1, 1, 1), (1, 1, 1), 1),
        lambda m: None, force_measure=True)
    assert reason == "measured" and set(info["times"]) >= {"direct", "gemm"}
    assert any(k.startswith(key) for k in _store.store().entries())
    out = nn.conv2d(x, w, padding=1)          # auto: served from the tuner's memo
    np.testing.assert_allclose(out, nn.conv2d(x, w, padding=1, method="direct"),
                               rtol=1e-4, atol=1e-3)


def test_calibration_fit_recovers_constants():
    ov = _model.DEFAULTS["fft"]["overhead"]
    samples = [("fft", u, ov + 3e-10 * u) for u in (1e6, 5e6, 2e7)]
    samples += [("direct", u, _model.DEFAULTS["direct"]["overhead"] + 2e-11 * u)
                for u in (1e5, 1e8)]
    fitted = _model.fit(samples)
    assert fitted["fft"]["c"] == pytest.approx(3e-10, rel=1e-9)
    assert fitted["direct"]["c"] == pytest.approx(2e-11, rel=1e-9)
    spec = spec_of(np.zeros((300, 300), np.float32), np.zeros((9, 9), np.float32))
    assert _model.predict(spec, "fft", {}, fitted) > _model.predict(spec, "fft", {})


def test_plan_takes_a_shape_dtype_pair_or_data():
    w = np.ones((2, 2))
    p = fastconv.plan(((8, 8), np.float32), w.astype(np.float32))
    assert p(np.ones((8, 8), np.float32)).shape == (9, 9)
    data = ((1.0, 2.0), (3.0, 4.0))          # a tuple of rows is data, not a shape
    np.testing.assert_allclose(fastconv.plan(data, w)(np.array(data)),
                               fastconv.convolve(data, w))


# -- a poisoned cache file (issue 14, item 3) ---------------------------------------------------

def _auto_call_key(x, w):
    spec = spec_of(x, w)
    return tuner.key_for(spec, x, candidates(spec, x, w)[0])


_BAD_ENTRIES = {
    "bad-null-time": {"times": {"direct": None}, "choice": "direct"},
    "bad-times-list": {"times": [1, 2], "choice": "direct"},
    "bad-string-time": {"times": {"direct": "fast"}, "choice": "direct"},
    "bad-negative-time": {"times": {"direct": -1.0}, "choice": "direct"},
    "bad-bool-time": {"times": {"direct": True}, "choice": "direct"},
    "bad-no-times": {"choice": "direct"},
    "bad-choice": {"times": {"direct": 1e-3}, "choice": "fft"},
    "bad-tuning-s": {"times": {"direct": 1e-3}, "choice": "direct", "tuning_s": "x"},
    "bad-params": {"times": {"direct": 1e-3}, "choice": "direct", "params": [1]},
    "bad-not-an-object": [1, 2, 3],
}
_BAD_MODEL = {"fft": [1, 2, 3], "oa": {"c": None, "overhead": 1e-4},
              "direct/2": {"c": -1.0, "overhead": 0.0}, "fft/1": {"c": 1e-10},
              "winograd": {"c": 1e-10, "overhead": 0.0}, "direct/9": {"c": 1e-10, "overhead": 0.0}}
_GOOD_MODEL = {"direct": {"c": 6e-11, "overhead": 5e-6}}


def _poisoned(good_key):
    entries = dict(_BAD_ENTRIES)
    entries[good_key] = {"times": {"direct": 1e-4, "fft": 1e-3}, "choice": "direct",
                         "tuning_s": 0.1}
    return {"header": _key.fingerprint(), "entries": entries,
            "model": dict(_BAD_MODEL, **_GOOD_MODEL)}


def test_malformed_cache_parts_are_dropped_with_one_warning(cache):
    x = np.ones((300, 300), np.float32)
    w = np.random.default_rng(0).standard_normal((9, 9)).astype(np.float32)   # full rank
    good_key = _auto_call_key(x, w)
    data = _poisoned(good_key)
    # the auto call's own signature poisoned: its entry's time is null
    x2 = np.ones((200, 200), np.float32)
    data["entries"][_auto_call_key(x2, w)] = {"times": {"direct": None}, "choice": "direct"}
    path = cache / f"tuning-{_key.fingerprint_id()}.json"
    path.write_text(json.dumps(data))
    with _config.override(tune="model"), warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        d = decide(spec_of(x, w), x, w)                 # the good entry is kept
        out = fastconv.convolve(x2, w, "same")                 # its entry was bad: model
        for _ in range(3):
            fastconv.convolve(x, w, "same")
    msgs = [str(r.message) for r in rec if "fastconv" in str(r.message)]
    assert len(msgs) == 1, msgs
    assert "malformed" in msgs[0] and str(path) in msgs[0] and "times['direct']" in msgs[0]
    assert d.reason == "cache" and d.method == "direct"
    assert out.shape == (200, 200)
    s = _store.store()
    assert set(s.entries()) == {good_key}
    assert s.model() == _GOOD_MODEL
    # a write merges into the file and drops the bad parts from it
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s.put("k-new", {"times": {"direct": 1e-3}, "choice": "direct"})
    on_disk = json.loads(path.read_text())
    assert set(on_disk["entries"]) == {good_key, "k-new"}
    assert on_disk["model"] == _GOOD_MODEL


def test_malformed_top_level_parts_keep_the_rest(cache):
    path = cache / f"tuning-{_key.fingerprint_id()}.json"
    good = {"k": {"times": {"direct": 1e-3}, "choice": "direct"}}
    path.write_text(json.dumps({"header": _key.fingerprint(), "entries": good,
                                "model": [1, 2]}))
    with pytest.warns(RuntimeWarning, match="malformed"):
        assert _store.Store(str(cache)).entries() == good
    _store._warned.clear()
    path.write_text(json.dumps({"header": _key.fingerprint(), "entries": "x",
                                "model": _GOOD_MODEL}))
    with pytest.warns(RuntimeWarning, match="malformed"):
        assert _store.Store(str(cache)).model() == _GOOD_MODEL


def test_import_rejects_malformed_parts_with_reasons(cache, tmp_path_factory, capsys):
    from fastconv.__main__ import main
    src = tmp_path_factory.mktemp("imp") / "poisoned.json"
    src.write_text(json.dumps(_poisoned("k-good")))
    report = tuner.import_(str(src))
    assert report["accepted"] == 1 and report["rejected"] == len(_BAD_ENTRIES)
    assert report["model_accepted"] == 1 and report["model_rejected"] == len(_BAD_MODEL)
    assert len(report["reasons"]) == len(_BAD_ENTRIES) + len(_BAD_MODEL)
    text = "\n".join(report["reasons"])
    for name in _BAD_ENTRIES:
        assert repr(name) in text
    assert "times['direct'] = None" in text and "'fft' is list" in text
    s = _store.store()
    assert set(s.entries()) == {"k-good"} and s.model() == _GOOD_MODEL
    # the CLI prints the report; a file with nothing usable is an error
    assert main(["cache", "import", str(src)]) == 0
    assert '"rejected": 10' in capsys.readouterr().out
    only_bad = dict(_poisoned("k-good"), model={})
    del only_bad["entries"]["k-good"]
    src.write_text(json.dumps(only_bad))
    assert main(["cache", "import", str(src)]) == 1
    src.write_text("{not json")
    assert main(["cache", "import", str(src)]) == 1
    assert "cannot read" in capsys.readouterr().err


def test_store_write_and_clear_errors_are_reported(tmp_path, capsys):
    """A failed write warns with the file's path and the OSError (also after a failed
    clear); a failed clear raises, and the CLI says so and exits non-zero."""
    from fastconv.__main__ import main
    with _config.override(cache_dir=str(tmp_path), tune="model"):
        tuner.clear_cache(memory_only=True)
        _store._warned.clear()
        s = _store.store()
        os.makedirs(s.path)                 # a folder where the cache file should be
        try:
            with warnings.catch_warnings(record=True) as rec:
                warnings.simplefilter("always")
                with pytest.raises(IsADirectoryError):
                    s.clear()
                s.put("k", {"times": {"direct": 1e-3}, "choice": "direct"})
            writes = [str(r.message) for r in rec if "cannot write" in str(r.message)]
            assert len(writes) == 1, [str(r.message) for r in rec]
            assert s.path in writes[0] and "IsADirectoryError" in writes[0]
            assert s.get("k")["choice"] == "direct"          # kept in memory
            capsys.readouterr()
            assert main(["cache", "clear"]) == 1
            captured = capsys.readouterr()
            assert "removed" not in captured.out
            assert "cache clear failed" in captured.err and s.path in captured.err
        finally:
            os.rmdir(s.path)
            tuner.clear_cache(memory_only=True)


def test_plan_out_must_be_an_array():
    p = fastconv.plan(np.ones((8, 8)), np.ones((3, 3)), "same")
    with pytest.raises(TypeError, match="out must be a numpy.ndarray"):
        p(np.ones((8, 8)), out=[1, 2])
    with pytest.raises(TypeError, match="out must be a numpy.ndarray"):
        p(np.ones((8, 8)), out=np.zeros((8, 8)).tolist())
    with pytest.raises(ValueError, match="out must have shape"):
        p(np.ones((8, 8)), out=np.zeros((8, 8), np.float32))
    ro = np.zeros((8, 8))
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        p(np.ones((8, 8)), out=ro)
    out = np.zeros((8, 8))
    assert p(np.ones((8, 8)), out=out) is out and out[4, 4] == 9


def test_interleaved_timing_does_not_charge_a_contender_for_the_previous_one():
    # "b" runs slowly right after "a" (as a method on Python threads does right after a
    # numba region, whose OpenMP workers keep spinning): its timed calls must not be
    # the ones that follow "a". Before, every timed "b" followed an "a": 3 ms each.
    import time as _time
    from fastconv.tuner._bench import time_interleaved
    state = {"dirty": False}

    def a():
        state["dirty"] = True

    def b():
        if state["dirty"]:
            _time.sleep(0.003)
        state["dirty"] = False

    times = time_interleaved({"a": a, "b": b}, 0.0, min_repeat=5)
    assert times["b"] < 0.001


def test_interleaved_timing_scores_each_contender_by_its_fastest_round():
    # Interference only adds time: "b" is slowed in most rounds (another process on the
    # machine), yet its intrinsic cost is below "a"'s. The median of its rounds ranked
    # it behind "a"; its fastest round ranks it ahead.
    import itertools
    import time as _time
    from fastconv.tuner._bench import time_interleaved
    slow = itertools.cycle([True, True, False])

    def a():
        _time.sleep(0.002)

    def b():
        _time.sleep(0.004 if next(slow) else 0.001)

    times = time_interleaved({"a": a, "b": b}, 0.0, min_repeat=6, max_repeat=6)
    assert times["b"] < times["a"]
