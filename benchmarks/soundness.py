"""The soundness matrix: does ``edgefm verify`` pass every good export and fail every planted fault?

For each model of ``benchmarks.zoo`` (built and exported there, cached), ``edgefm
verify`` (the real CLI in a subprocess, ``--json``) judges:

- every good variant, on the model's verify rows (with their labels where the model
  has classes): expected PASS wherever the accuracy holds (TF's accuracy minus the
  variant's at most ``ACCURACY_HOLDS`` = 1 pt); a variant whose accuracy does not
  hold may pass or fail and is not counted;
- every planted fault (``zoo.MODELS[...].faults``): the good artifacts directory with one
  variant's file (and its manifest entry) replaced by the faulty one, the wrong file where
  the user's would be: expected FAIL. INCONCLUSIVE is not
  caught (exit 3 names the fault as undecided, not as wrong).

Two targets, printed as PASS/FAIL lines: 0 false failures (a good export that holds
its accuracy and does not PASS; INCONCLUSIVE counts as a false failure too, since the
user gets no PASS), and 100% of planted faults caught.

    python -m benchmarks.soundness [MODEL ...] [--python PYTHON] [--json]

``--python``: the interpreter whose edgefm judges (another checkout's venv measures
that checkout's verdict rules on the same files).
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks import zoo

#: a good export whose accuracy drops by at most this much must PASS
ACCURACY_HOLDS = 0.01


def _verify(root: Path, python: str, tmp: Path, *extra: str) -> dict[str, Any]:
    args = ["verify", "--data", str(root / "test.npz"), "--no-html", "--json", "--report", str(tmp / "report.json"),
            *extra]
    if (root / "labels.npy").exists():
        args += ["--labels-data", str(root / "labels.npy")]
    # run from the checkout that owns the interpreter's venv (CHECKOUT/.venv/bin/python): `python -m` imports from cwd
    checkout = Path(python).absolute().parents[2] if ".venv" in Path(python).absolute().parts else None
    done = zoo.cli(*args, python=python, cwd=checkout)
    if not done.stdout.strip():
        raise RuntimeError(f"edgefm verify exited {done.returncode}: {done.stderr.strip()[-800:]}")
    report = json.loads(done.stdout)
    if "artifacts" not in report:
        raise RuntimeError(f"edgefm verify exited {done.returncode}: {report}")
    report["exit_status"] = done.returncode
    return report


def verdict(row: dict[str, Any]) -> str:
    if row.get("error"):
        return "ERROR"
    return str(row.get("verdict") or ("PASS" if row["passed"] else "FAIL"))


def _failed(row: dict[str, Any]) -> list[str]:
    return [k for k, m in row.get("metrics", {}).items() if not m.get("passed", True) or m.get("inconclusive")]


def _faulty_artifacts(root: Path, fault: str, variant: str, tmp: Path) -> Path:
    """The good artifacts directory (hard links; its cached reference outputs too) with ``variant``'s file and
    manifest entry replaced by the fault's: the wrong file where the user's would be."""
    import os
    import shutil

    target = tmp / f"faulty-{fault}"
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(root / "artifacts", target, copy_function=os.link)
    good = json.loads((target / "manifest.json").read_text())
    bad = json.loads((root / "faults" / fault / "manifest.json").read_text())
    entry = bad["artifacts"][variant]
    (target / entry["path"]).unlink(missing_ok=True)
    shutil.copy(root / "faults" / fault / entry["path"], target / entry["path"])
    good["artifacts"][variant] = entry
    (target / "manifest.json").unlink()
    (target / "manifest.json").write_text(json.dumps(good, indent=1))
    return target


def model_rows(name: str, python: str = sys.executable, *, data_dir: Path | None = None,
               variants: tuple[str, ...] = (), only_faults: tuple[str, ...] | None = None) -> dict[str, Any]:
    """Every good variant (or ``variants``) and every fault (or ``only_faults``) of one zoo model, judged by ``python``'s
    edgefm."""
    spec = zoo.MODELS[name]
    root = zoo.build(spec, data_dir=data_dir, log=lambda m: print(m, file=sys.stderr, flush=True))
    record = json.loads((root / "record.json").read_text())
    with tempfile.TemporaryDirectory(prefix="edgefm-soundness-") as tmp_dir:
        tmp = Path(tmp_dir)
        good = _verify(root, python, tmp, "--artifacts", str(root / "artifacts"),
                       *(arg for v in variants for arg in ("--only", v)))
        rows = []
        for variant, a in good["artifacts"].items():
            m = a.get("metrics", {})
            drop = (m.get("accuracy_drop") or {}).get("value")
            holds = drop is None or drop <= ACCURACY_HOLDS
            rows.append({"variant": variant, "verdict": verdict(a), "accuracy_holds": holds, "accuracy_drop": drop,
                         "failed": _failed(a), "error": a.get("error"),
                         "metrics": {k: v.get("value") for k, v in m.items()},
                         "details": {k: v.get("detail") for k, v in m.items() if v.get("detail")}})
        faults = []
        for fault, file in record.get("faults", {}).items():
            if only_faults is not None and fault not in only_faults:
                continue
            if file is None:
                faults.append({"fault": fault, "verdict": "NOT EXPORTED", "caught": False, "failed": []})
                continue
            variant = zoo.FAULT_VARIANT.get(fault, "tflite_float32")
            rep = _verify(root, python, tmp, "--artifacts", str(_faulty_artifacts(root, fault, variant, tmp)),
                          "--only", variant)
            a = next(iter(rep["artifacts"].values()))
            v = verdict(a)
            faults.append({"fault": fault, "file": Path(file).name, "verdict": v, "caught": v == "FAIL",
                           "failed": _failed(a), "metrics": {k: x.get("value") for k, x in a["metrics"].items()},
                           "details": {k: x.get("detail") for k, x in a["metrics"].items() if x.get("detail")}})
    return {"model": name, "reference_accuracy": good["reference"].get("accuracy"),
            "trained": {k: v for k, v in record.items() if k in ("accuracy", "chance", "score", "box_mae")},
            "rows": rows, "faults": faults, "weak_evidence": good.get("weak_evidence", [])}


def soundness_section(models: list[str] | None = None, *, python: str = sys.executable,
                      data_dir: Path | None = None) -> dict[str, Any]:
    results = [model_rows(m, python, data_dir=data_dir) for m in (models or list(zoo.MODELS))]
    expected = [r for m in results for r in m["rows"] if r["accuracy_holds"] and not r["error"]]
    false_failures = [f"{m['model']}/{r['variant']}" for m in results for r in m["rows"]
                      if r["accuracy_holds"] and not r["error"] and r["verdict"] != "PASS"]
    planted = [f for m in results for f in m["faults"] if f["verdict"] != "NOT EXPORTED"]
    missed = [f"{m['model']}/{f['fault']}" for m in results for f in m["faults"]
              if f["verdict"] != "NOT EXPORTED" and not f["caught"]]
    return {
        "models": results,
        "good_exports": len(expected), "false_failures": false_failures,
        "planted_faults": len(planted), "missed_faults": missed,
        "targets": [
            {"target": "0 false failures on good exports whose accuracy holds", "value": len(false_failures),
             "passed": not false_failures},
            {"target": "100% of planted faults caught",
             "value": (len(planted) - len(missed)) / len(planted) if planted else None, "passed": bool(planted) and not missed},
        ],
    }


def markdown(section: dict[str, Any]) -> str:
    lines = ["| model | TF accuracy | variant | verdict | acc. drop | failed or undecided bounds |", "|---|---|---|---|---|---|"]
    for m in section["models"]:
        acc = m["reference_accuracy"]
        acc_text = "-" if acc is None else f"{100 * acc:.1f}%"
        for r in m["rows"]:
            drop = "-" if r["accuracy_drop"] is None else f"{100 * r['accuracy_drop']:+.2f} pt"
            holds = "" if r["accuracy_holds"] else " (accuracy does not hold)"
            lines.append(f"| {m['model']} | {acc_text} | {r['variant']} | {r['verdict']}{holds} | {drop} | "
                         f"{', '.join(r['failed']) or '-'} |")
    lines += ["", "| model | planted fault | file | verdict | caught | failed bounds |", "|---|---|---|---|---|---|"]
    for m in section["models"]:
        for f in m["faults"]:
            lines.append(f"| {m['model']} | {f['fault']} | {f.get('file', '-')} | {f['verdict']} | "
                         f"{'caught' if f['caught'] else 'MISSED'} | {', '.join(f['failed']) or '-'} |")
    lines.append("")
    for t in section["targets"]:
        value = t["value"] if not isinstance(t["value"], float) else f"{100 * t['value']:.0f}%"
        lines.append(f"{'PASS' if t['passed'] else 'FAIL'}: {t['target']} (measured: {value}"
                     + (f"; {', '.join(section['false_failures'] if 'false' in t['target'] else section['missed_faults'])}"
                        if not t["passed"] else "") + ")")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("models", nargs="*")
    p.add_argument("--python", default=sys.executable)
    p.add_argument("--data-dir", type=Path)
    p.add_argument("--json", action="store_true")
    p.add_argument("--out", type=Path, help="also write the section's JSON here")
    a = p.parse_args(argv)
    section = soundness_section(a.models or None, python=a.python, data_dir=a.data_dir)
    if a.out:
        a.out.write_text(json.dumps(section, indent=1))
    print(json.dumps(section, indent=1) if a.json else markdown(section))
    return 0


if __name__ == "__main__":
    sys.exit(main())
