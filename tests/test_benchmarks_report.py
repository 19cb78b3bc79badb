"""docs/benchmarks.md is generated from the committed benchmark JSONs in docs/bench/: the page in the
repository must be exactly what the generator writes from them (no hand-edited or stale figures)."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_benchmarks_page_is_generated_from_the_committed_json(tmp_path):
    out = tmp_path / "benchmarks.md"
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "benchmarks_report.py"), "--dir",
                        str(ROOT / "docs" / "bench"), "--out", str(out)], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    page = out.read_text()
    assert page == (ROOT / "docs" / "benchmarks.md").read_text(), \
        "docs/benchmarks.md is out of date: run scripts/benchmarks_report.py"
    found = sorted(p.name for p in (ROOT / "docs" / "bench").glob("*.json"))
    assert found, "no benchmark results committed in docs/bench/"
    for name in found:  # every committed result says how it was produced
        res = json.loads((ROOT / "docs" / "bench" / name).read_text())
        assert res.get("provenance", {}).get("command") or res.get("date_utc"), name
    assert page.count("## ") >= len(found)


def test_correlation_time_of_a_cosine():
    """The benchmarks' gap correlation time: ∫ C(t) dt to C's first zero is 1/ω for cos(ωt)."""
    sys.path.insert(0, str(ROOT / "scripts"))
    from benchlib import correlation_time_fs

    period_fs = 200.0
    t = np.arange(0, 40000, 0.5)
    assert correlation_time_fs(np.cos(2 * np.pi * t / period_fs), 0.5) == \
        pytest.approx(period_fs / (2 * np.pi), rel=5e-3)


def test_dish_results_of_other_settings_are_refused(tmp_path):
    """A benchmark never reads a populations folder run with other DISH settings as its own (a 50 ps run
    under a 10 ns label); the same settings are read back without a rerun."""
    import h5py

    sys.path.insert(0, str(ROOT / "scripts"))
    from benchlib import DISH, dish_populations

    h5 = tmp_path / "level.h5"
    (tmp_path / "level").mkdir()
    ran = {"input": {"couplings": str(h5)}, "states": [1, 2], "method": "dish", "carrier": "electron",
           "temperature_K": 300.0, **DISH, "plots": True, "output": str(tmp_path / "level")}
    with h5py.File(tmp_path / "level" / "populations.h5", "w") as f:
        f.attrs["config"] = json.dumps(ran)
    assert dish_populations(h5, 2, tmp_path / "log") == tmp_path / "level" / "populations.h5"
    with pytest.raises(SystemExit, match="namdtime_fs.*50000.0, 10000000.0"):
        dish_populations(h5, 2, tmp_path / "log", dish={**DISH, "namdtime_fs": 1e7})
