"""Released runtime versions as verify rows, the CI views and the release gates, on the real trained model.

The pinned runtime is the real tflite-runtime 2.14.0 from PyPI (cached per user after the
first run); nothing is mocked. The no-network case points pip at a closed local port.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from edgefm.core.errors import UsageError
from runtime_check.verify.baseline import parse_budget, parse_regressions
from runtime_check.versions.spec import parse_runtime_range, parse_runtime_spec, version_key

from conftest import run_cli

OLD_TFLITE = "tflite-runtime==2.14.0"
DEAD_INDEX = {"PIP_INDEX_URL": "http://127.0.0.1:9/simple", "PIP_RETRIES": "0"}


def test_parsers_take_the_documented_forms_and_refuse_the_rest() -> None:
    assert parse_runtime_spec("tflite_runtime==2.14.0").label == "tflite-runtime-2.14.0"
    r = parse_runtime_range("ai-edge-litert>=1.0,<=2.3")
    assert r.contains("1.4.0") and r.contains("2.3.0") and not r.contains("2.3.1") and not r.contains("0.9")
    assert parse_budget("tflite_int8=256KiB", "size") == ("tflite_int8", 256 * 1024)
    assert parse_budget("tflite_int8=2ms", "latency") == ("tflite_int8", pytest.approx(0.002))
    assert parse_regressions("accuracy=0.3pt,size=5%,latency=10%") == {"accuracy": 0.3, "size": 5.0, "latency": 10.0}
    for bad, call in (("numpy==1.0", parse_runtime_spec), ("tflite-runtime>=2.14", parse_runtime_spec),
                      ("ai-edge-litert>=2.3,<=1.0", parse_runtime_range), ("x=1", parse_regressions),
                      ("accuracy=3%", parse_regressions)):
        with pytest.raises(UsageError):
            call(bad)
    with pytest.raises(UsageError, match="units"):
        parse_budget("tflite_int8=256", "size")


@pytest.mark.parametrize("args, says", [
    (("--runtime", "numpy==1.26.4"), "does not know how to run the package 'numpy'"),
    (("--runtime", "tflite-runtime"), "PACKAGE==VERSION"),
    (("--max-size", "tflite_int8=lots"), "size budget"),
    (("--max-regression", "accuracy=0.3"), "METRIC=LIMIT"),
])
def test_malformed_runtime_and_budget_options_are_usage_errors(tmp_path: Path, args: tuple[str, ...], says: str) -> None:
    res = run_cli("verify", "--artifacts", str(tmp_path), *args)
    assert res.returncode == 2, res.stdout + res.stderr
    assert says in res.stderr and "Traceback" not in res.stderr


@pytest.mark.integration
@pytest.mark.slow
def test_a_version_that_does_not_exist_and_no_network_are_one_paragraph_and_leave_no_half_install(
        tmp_path: Path, trained_artifacts: Path) -> None:
    cache = tmp_path / "cache"
    res = run_cli("verify", "--artifacts", str(trained_artifacts), "--samples", "50", "--no-html",
                  "--report", str(tmp_path / "r.json"), "--runtime", "tflite-runtime==9.9.9",
                  env={"XDG_CACHE_HOME": str(cache)})
    assert res.returncode == 2, res.stdout + res.stderr
    assert "has no version 9.9.9" in res.stderr and "2.14.0" in res.stderr and "Traceback" not in res.stderr
    res = run_cli("verify", "--artifacts", str(trained_artifacts), "--samples", "50", "--no-html",
                  "--report", str(tmp_path / "r.json"), "--runtime", OLD_TFLITE,
                  env={"XDG_CACHE_HOME": str(cache), **DEAD_INDEX})
    assert res.returncode == 2, res.stdout + res.stderr
    assert "Cannot reach the package index" in res.stderr and "Traceback" not in res.stderr
    leftovers = [p for p in (cache / "edgefm" / "runtimes").rglob("*") if p.is_file()]
    assert leftovers == [], leftovers  # nothing half-downloaded or half-installed


@pytest.mark.integration
@pytest.mark.slow
def test_without_network_the_cached_wheels_rebuild_the_environment(tmp_path: Path) -> None:
    """The environment is gone and the index unreachable: it is built again from the kept wheels."""
    import os

    from runtime_check.versions.environment import _tag, cache_root, ensure_environment

    spec = parse_runtime_spec(OLD_TFLITE)
    ensure_environment(spec)  # the user's cache (fetched once from PyPI)
    wheels = cache_root() / "wheels" / f"{spec.label}-{_tag()}"
    shutil.copytree(wheels, tmp_path / "wheels" / wheels.name)
    old = {k: os.environ.get(k) for k in DEAD_INDEX}
    os.environ.update(DEAD_INDEX)
    try:
        env = ensure_environment(spec, cache=tmp_path)
    finally:
        for k, v in old.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    assert not env.cached and env.module_version == "2.14.0" and env.python.exists()
    assert json.loads((env.directory / "runtime.json").read_text())["wheels"] == env.wheels
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no staging left


@pytest.mark.integration
@pytest.mark.slow
def test_old_tflite_runtime_rows_junit_summary_and_a_worse_release(tmp_path: Path, trained_artifacts: Path) -> None:
    """The issue's done-when: float32/float16/int8 load in tflite-runtime 2.14, the dynamic file names its op."""
    import junitparser
    from markdown_it import MarkdownIt

    report = tmp_path / "verify-report.json"
    res = run_cli("verify", "--artifacts", str(trained_artifacts), "--samples", "500", "--no-html",
                  "--report", str(report), "--runtime", OLD_TFLITE, "--junit", str(tmp_path / "junit.xml"),
                  "--summary", str(tmp_path / "summary.md"))
    assert res.returncode == 1, res.stdout + res.stderr
    rows = json.loads(report.read_text())["artifacts"]
    for name in ("tflite_float32", "tflite_float16", "tflite_int8"):
        assert rows[f"{name}@tflite-runtime-2.14.0"]["passed"], rows[f"{name}@tflite-runtime-2.14.0"]
    dynamic = rows["tflite_dynamic@tflite-runtime-2.14.0"]
    assert not dynamic["passed"] and "FULLY_CONNECTED version 12" in dynamic["error"]
    assert "newest FULLY_CONNECTED it has is version" in dynamic["error"]
    assert rows["tflite_dynamic"]["passed"] and "onnx_float32@tflite-runtime-2.14.0" not in rows

    xml = junitparser.JUnitXml.fromfile(str(tmp_path / "junit.xml"))
    suites = {s.name: s for s in xml}
    assert suites["edgefm.verify.tflite_int8@tflite-runtime-2.14.0"].failures == 0
    bad = suites["edgefm.verify.tflite_dynamic@tflite-runtime-2.14.0"]
    assert bad.errors == 1
    (case,) = list(bad)
    assert "FULLY_CONNECTED version 12" in case.result[0].message
    assert sum(s.tests for s in xml) >= 10 * len(rows)  # one case per bounded metric per row

    tokens = MarkdownIt("commonmark").enable("table").parse((tmp_path / "summary.md").read_text())
    assert [t.content for t in tokens if t.type == "inline"][0] == "edgefm verify: FAIL"
    body_rows = sum(t.type == "tr_open" for t in tokens) - 1  # minus the header row
    assert body_rows == len(rows)
    assert any(t.type == "bullet_list_open" for t in tokens)  # the failures

    # A release whose int8 accuracy is 0.5 pt worse than the baseline fails, naming the metric.
    worse = json.loads(report.read_text())
    acc = worse["artifacts"]["tflite_int8"]["metrics"]["accuracy"]
    acc["value"] -= 0.005
    (tmp_path / "worse.json").write_text(json.dumps(worse))
    res = run_cli("diff", str(report), str(tmp_path / "worse.json"), "--max-regression", "accuracy=0.3pt",
                  "--junit", str(tmp_path / "gates.xml"))
    assert res.returncode == 1, res.stdout + res.stderr
    assert "tflite_int8: accuracy_regression_pt = 0.5" in res.stderr
    gates = {s.name: s for s in junitparser.JUnitXml.fromfile(str(tmp_path / "gates.xml"))}["edgefm.verify.release"]
    assert gates.failures == 1
    res = run_cli("diff", str(report), str(report), "--max-regression", "accuracy=0.3pt,size=5%")
    assert res.returncode == 0, res.stdout + res.stderr


@pytest.mark.integration
@pytest.mark.slow
def test_export_min_runtime_makes_a_dynamic_file_tflite_runtime_2_14_loads(tmp_path: Path, trained_artifacts: Path) -> None:
    from edgefm.formats.tflite_file import tflite_min_runtime_version, tflite_op_versions
    from runtime_check.versions.runtime import PinnedRuntime

    root = tmp_path / "artifacts"
    shutil.copytree(trained_artifacts, root)
    res = run_cli("export", "--artifacts", str(root), "--format", "tflite", "--quantize", "dynamic",
                  "--min-runtime", "tflite-runtime==2.14", "-q")
    assert res.returncode == 0, res.stdout + res.stderr
    path = root / "model_dynamic.tflite"
    assert tflite_op_versions(path)["FULLY_CONNECTED"] < 12
    assert version_key(tflite_min_runtime_version(path)) <= version_key("2.14.0")
    with PinnedRuntime(path, parse_runtime_spec(OLD_TFLITE)) as rt:
        out = rt.infer({rt.input_specs[0].name: __import__("numpy").zeros((2, 28, 28), "float32")})
    assert {k: v.shape for k, v in out.items()} == {"logits": (2, 10), "probabilities": (2, 10)}
    res = run_cli("export", "--artifacts", str(root), "--format", "tflite", "--quantize", "dynamic",
                  "--min-runtime", "tflite-runtime==2.2", "-q")
    assert res.returncode == 1 and "tflite_dynamic cannot be made for tflite-runtime==2.2" in res.stderr, res.stderr
    res = run_cli("export", "--artifacts", str(root), "--min-runtime", "ai-edge-litert==1.0", "-q")
    assert res.returncode == 2 and "Only tflite-runtime is understood" in res.stderr, res.stderr


class _Planted:
    """A real PinnedRuntime whose outputs, from release ``since`` on, are moved by ``shift`` (the planted change)."""

    def __init__(self, runtime, shift: float) -> None:
        self.runtime, self.shift = runtime, shift

    def __getattr__(self, name: str):
        return getattr(self.runtime, name)

    def __enter__(self):
        self.runtime.activate()
        return self

    def __exit__(self, *exc: object) -> None:
        self.runtime.deactivate()

    def infer(self, feeds):
        return {k: v + self.shift for k, v in self.runtime.infer(feeds).items()}


@pytest.mark.integration
@pytest.mark.slow
def test_bisect_finds_the_first_release_of_a_planted_change_within_its_bound(tmp_path: Path,
                                                                              trained_artifacts: Path) -> None:
    """Eight real ai-edge-litert releases run the int8 file; from 1.3.0 on, the outputs move by 3 steps."""
    from edgefm.formats.tflite_file import tflite_output_steps
    from runtime_check.verify.config import CheckConfig
    from runtime_check.verify.version_bisect import run_bisect
    from runtime_check.versions.runtime import PinnedRuntime
    from runtime_check.versions.spec import RuntimeSpec

    released = ["1.1.0", "1.1.1", "1.1.2", "1.2.0", "1.3.0", "1.4.0", "2.0.2", "2.0.3"]  # from `pip index versions`
    planted = version_key("1.3.0")
    step = tflite_output_steps(trained_artifacts / "model_int8.tflite")["logits"]  # its int8 logits' scale

    def runner(path: Path, spec: RuntimeSpec):
        rt = PinnedRuntime(path, spec)
        return rt if version_key(spec.version) < planted else _Planted(rt, 3 * step)

    cfg = CheckConfig(artifacts=trained_artifacts, only=("tflite_int8",), samples=200)
    found = run_bisect(cfg, parse_runtime_range("ai-edge-litert>=1.1,<=2.0.3"), runner=runner, available=released)
    assert (found.previous, found.first_changed) == ("1.2.0", "1.3.0"), found.describe()
    assert "tflite_int8" in found.differences and "> step" in found.differences["tflite_int8"]
    assert len(found.ran) <= found.bound == 2 + 3  # 8 versions: the ends and ceil(log2 7) = 3 more
    assert found.ran[:2] == ["1.1.0", "2.0.3"]

    same = run_bisect(cfg, parse_runtime_range("ai-edge-litert>=1.1,<=1.2"), available=released)
    assert same.first_changed is None and same.ran == ["1.1.0", "1.2.0"]  # the real releases agree


def test_bisect_without_a_range_is_a_usage_error(tmp_path: Path) -> None:
    res = run_cli("verify", "--artifacts", str(tmp_path), "--bisect")
    assert res.returncode == 2 and "--runtime-range" in res.stderr, res.stderr
    res = run_cli("verify", "--artifacts", str(tmp_path), "--runtime-range", "ai-edge-litert>=2.3,<=1.0")
    assert res.returncode == 2 and "empty" in res.stderr, res.stderr


def test_a_view_over_the_report_is_refused_before_anything_runs(tmp_path: Path) -> None:
    report = tmp_path / "verify-report.json"
    res = run_cli("verify", "--artifacts", str(tmp_path), "--report", str(report), "--junit", str(report))
    assert res.returncode == 2 and "--junit" in res.stderr and "JSON report" in res.stderr, res.stderr
    assert not report.exists()
