"""When a verdict proves little: the weak-evidence notes of a verify, as data.

A PASS is only as strong as the rows it was measured on. Each note here is one line
under the verdict (``text.render_table``, the page) and one entry of the JSON
report's ``weak_evidence`` list, so no weak PASS is silent:

- ``one_class``: the reference predicts one class for at least ``ONE_CLASS_SHARE`` of
  the rows. Top-1 agreement is then near 100% for almost any file that leans the same
  way: it shows little about the other classes.
- ``synthetic``: the inputs are seeded random values (``--data synthetic``, the default
  for a model edgefm did not train): a smoke test, not proof of parity on real inputs.
- ``rows``: a bound these rows cannot settle: ``statistics.INCONCLUSIVE``, or a pass on
  the estimate that the interval does not show (``statistics.UNSHOWN``), with the rows
  that would.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from runtime_check.verify.results import ArtifactResult
from runtime_check.verify.statistics import UNSHOWN

#: the reference predicting one class for at least this share of rows is weak evidence
ONE_CLASS_SHARE = 0.95


def one_class(reference: Mapping[str, np.ndarray], classification: Iterable[str]) -> list[dict[str, Any]]:
    notes = []
    for k in classification:
        r = reference.get(k)
        if r is None or np.ndim(r) != 2 or not len(r):
            continue
        counts = np.bincount(np.argmax(r, axis=1), minlength=np.shape(r)[1])
        top = int(counts.argmax())
        share = float(counts[top] / len(r))
        if share >= ONE_CLASS_SHARE:
            notes.append({"kind": "one_class", "output": k, "class": top, "share": share,
                          "text": f"the reference predicts class {top} of output {k} for {100 * share:.1f}% of the "
                                  f"{len(r)} rows: top-1 agreement shows little about the other classes"})
    return notes


def synthetic(inputs: Mapping[str, Any]) -> list[dict[str, Any]]:
    if inputs.get("source") != "synthetic":
        return []
    return [{"kind": "synthetic", "text": "the inputs are synthetic (seeded random values): a smoke test, not proof "
                                          "of parity; verify on real inputs with --data FILE"}]


def unresolved(results: Iterable[ArtifactResult]) -> list[dict[str, Any]]:
    """Bounds the rows cannot settle: INCONCLUSIVE ones, and passes on an estimate the interval does not show."""
    notes = []
    for a in results:
        for m in a.metrics:
            if not (m.inconclusive or (m.passed and UNSHOWN in m.detail)):
                continue
            needed = m.detail.rsplit("needs ", 1)[-1] if "needs " in m.detail else "more rows"
            how = "INCONCLUSIVE" if m.inconclusive else "passed on its estimate only"
            notes.append({"kind": "rows", "artifact": a.name, "metric": m.name,
                          "text": f"{a.name}: {m.name} is not shown by these rows ({how}); needs {needed}"})
    return notes


def weak_evidence(reference: Mapping[str, np.ndarray], classification: Iterable[str], inputs: Mapping[str, Any],
                  results: Iterable[ArtifactResult]) -> list[dict[str, Any]]:
    """Every weak-evidence note of one verify, in the order the table prints them."""
    return [*synthetic(inputs), *one_class(reference, classification), *unresolved(results)]
