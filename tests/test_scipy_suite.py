"""SciPy's own tests of the functions fastconv mirrors, run with fastconv in place of
SciPy (fastconv.testing.scipy_plugin): every selected test that passes on SciPy must pass.

Each group runs in a fresh interpreter (the plugin must patch scipy before the test
modules import their names). When a group fails, the same selection runs on plain SciPy
and only tests that pass there count as failures.
"""
import importlib.util
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

GROUPS = {
    "ndimage": ["scipy.ndimage.tests.test_filters"],
    "signal": ["scipy.signal.tests.test_signaltools", "scipy.signal.tests.test_savitzky_golay",
               "scipy.signal.tests.test_fir_filter_design"],
}


def _run(modules, tmp_path, tag, baseline=False):
    xml = tmp_path / f"{tag}.xml"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    env.setdefault("FASTCONV_TUNE", "model")       # no timing runs inside the suite
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
           "-p", "fastconv.testing.scipy_plugin", f"--junitxml={xml}", "--pyargs", *modules]
    if baseline:
        cmd.append("--fastconv-baseline")
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True)
    if not xml.exists():
        pytest.fail(f"pytest did not run ({proc.returncode}):\n{proc.stdout[-3000:]}"
                    f"\n{proc.stderr[-3000:]}")
    failed, passed = set(), 0
    for case in ET.parse(xml).getroot().iter("testcase"):
        name = f"{case.get('classname')}::{case.get('name')}"
        if case.find("failure") is not None or case.find("error") is not None:
            failed.add(name)
        elif case.find("skipped") is None:
            passed += 1
    return failed, passed, proc.stdout


@pytest.mark.parametrize("group", sorted(GROUPS))
def test_scipy_suite_passes_with_fastconv(group, tmp_path):
    modules = GROUPS[group]
    if importlib.util.find_spec(modules[0]) is None:
        pytest.skip("this scipy installation ships without its tests")
    failed, passed, out = _run(modules, tmp_path, "fastconv")
    assert passed > 0, out[-3000:]
    if failed:
        on_scipy, _, _ = _run(modules, tmp_path, "scipy", baseline=True)
        ours = sorted(failed - on_scipy)
        assert not ours, f"{len(ours)} of SciPy's tests fail only with fastconv:\n" + \
            "\n".join(ours[:50]) + "\n" + out[-5000:]
