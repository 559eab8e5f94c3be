"""Which release of a runtime changed the outputs: ``verify --runtime-range PKG>=A,<=B --bisect``.

The versions in the range come from the index (``pip index versions``, final
releases only, oldest first). The two ends run first; if their outputs agree, no
version in between is searched. Otherwise a binary search keeps ``lo`` (outputs
equal to the oldest's) and ``hi`` (different) until they are neighbours: ``hi`` is
the first version whose outputs differ from the previous one's. That assumes one
change in the range (as ``git bisect`` does); a range with several changes finds
one of them. Runs: 2 + ceil(log2(N - 1)) for N versions; every version's
environment is built once and kept (``runtime_check.versions.environment``), so a
second bisect over the same range installs nothing.

"Differ" is per artifact and output: max |a - b| beyond one quantization step of
the output for a quantized output (its scale), else beyond the variant's
``max_abs_error`` bound (``runtime_check.verify.tolerances``), and a file one
version loads and the other does not. Each version runs every artifact of its
format on the same inputs (the first ``samples`` rows verify would use).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgefm.core.errors import EdgefmError, UsageError
from runtime_check.runtimes.base import Runtime
from runtime_check.versions.spec import RuntimeRange, RuntimeSpec

#: the default float bound when the variant has none on max_abs_error
FLOAT_STEP = 1e-4
Outputs = dict[str, dict[str, np.ndarray] | str]  # artifact -> outputs, or why it did not run
RunnerFactory = Callable[[Path, RuntimeSpec], Runtime]


@dataclass
class BisectResult:
    package: str
    versions: list[str]
    ran: list[str] = field(default_factory=list)  # in the order they ran
    installs: int = 0  # environments built (not found in the cache)
    first_changed: str | None = None
    previous: str | None = None
    differences: dict[str, str] = field(default_factory=dict)  # artifact -> what differs at the change

    @property
    def bound(self) -> int:
        """The most runs the search may take: the two ends plus ceil(log2(N - 1))."""
        n = len(self.versions)
        return n if n <= 2 else 2 + math.ceil(math.log2(n - 1))

    def to_dict(self) -> dict[str, Any]:
        return {"package": self.package, "versions": self.versions, "ran": self.ran, "installs": self.installs,
                "runs": len(self.ran), "bound": self.bound, "first_changed": self.first_changed,
                "previous": self.previous, "differences": self.differences}

    def describe(self) -> str:
        head = (f"bisect {self.package} over {len(self.versions)} versions ({self.versions[0]} .. {self.versions[-1]}): "
                f"{len(self.ran)} runs ({', '.join(self.ran)}), {self.installs} installs")
        if self.first_changed is None:
            return head + "; the outputs of the ends agree: no version in between changed them."
        what = "; ".join(f"{k}: {v}" for k, v in self.differences.items())
        return head + f"; first changed in {self.first_changed} (after {self.previous}): {what}"


def versions_in(rng: RuntimeRange, available: list[str]) -> list[str]:
    from runtime_check.versions.spec import version_key

    chosen = sorted((v for v in available if rng.contains(v)), key=lambda v: version_key(v) or ())
    if not chosen:
        raise UsageError(f"--runtime-range {rng.text}: the index has no {rng.package} release in that range for this "
                         f"Python/CPU (it has {', '.join(available[-12:]) or 'none'}).")
    return chosen


def difference(a: Outputs, b: Outputs, steps: Mapping[str, Mapping[str, float]]) -> dict[str, str]:
    """Per artifact, what differs between two versions' outputs beyond its step (empty: they agree)."""
    out = {}
    for name in a.keys() | b.keys():
        x, y = a.get(name), b.get(name)
        if isinstance(x, str) or isinstance(y, str) or x is None or y is None:
            if not (isinstance(x, str) and isinstance(y, str)):
                out[name] = f"runs in one version only ({x if isinstance(x, str) else y})"
            continue
        for key in x:
            d = float(np.max(np.abs(x[key].astype(np.float64) - y[key].astype(np.float64)))) if x[key].size else 0.0
            step = steps.get(name, {}).get(key, FLOAT_STEP)
            if not d <= step:
                out[name] = f"{key} max |diff| {d:.4g} > step {step:.4g}"
                break
    return out


def run_version(spec: RuntimeSpec, models: Mapping[str, Path], feeds: Mapping[str, np.ndarray],
                runner: RunnerFactory, steps: dict[str, dict[str, float]]) -> Outputs:
    """Every model in ``spec``'s runtime on ``feeds``; a model that fails gives its message instead."""
    out: Outputs = {}
    for name, path in models.items():
        rt = runner(path, spec)
        try:
            with rt:
                out[name] = rt.infer({s.name: feeds[s.name] for s in rt.input_specs})
                raw = getattr(rt, "_raw_out", None) or []
                for s in raw:
                    if s.scale:  # one quantization step of this output
                        steps.setdefault(name, {})[s.name] = float(s.scale)
        except EdgefmError as e:
            out[name] = str(e)
    return out


def bisect(specs: list[RuntimeSpec], models: Mapping[str, Path], feeds: Mapping[str, np.ndarray], *,
           float_steps: Mapping[str, float] | None = None, runner: RunnerFactory | None = None,
           steps: Mapping[str, Mapping[str, float]] | None = None) -> BisectResult:
    """The first of ``specs`` (oldest first) whose outputs differ from the previous one's; see the module doc."""
    from runtime_check.versions.environment import ensure_environment
    from runtime_check.versions.runtime import PinnedRuntime

    result = BisectResult(specs[0].package, [s.version for s in specs])
    steps: dict[str, dict[str, float]] = {k: dict(v) for k, v in (steps or {}).items()}  # quantized outputs
    memo: dict[int, Outputs] = {}

    def default_runner(path: Path, spec: RuntimeSpec) -> Runtime:
        return PinnedRuntime(path, spec, environment=envs[spec])

    envs: dict[RuntimeSpec, Any] = {}
    make = runner or default_runner

    def outputs(i: int) -> Outputs:
        if i not in memo:
            spec = specs[i]
            env = ensure_environment(spec)
            envs[spec] = env
            result.installs += not env.cached
            result.ran.append(spec.version)
            memo[i] = run_version(spec, models, feeds, make, steps)
        return memo[i]

    def step_of() -> dict[str, dict[str, float]]:
        return {name: {**{k: float_steps.get(name, FLOAT_STEP) for k in _keys(memo, name)}, **steps.get(name, {})}
                for name in models} if float_steps is not None else steps

    lo, hi = 0, len(specs) - 1
    if hi == 0 or not difference(outputs(lo), outputs(hi), step_of()):
        outputs(hi)
        return result
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if difference(outputs(lo), outputs(mid), step_of()):
            hi = mid
        else:
            lo = mid
    result.first_changed, result.previous = specs[hi].version, specs[lo].version
    result.differences = difference(outputs(lo), outputs(hi), step_of())
    return result


def _keys(memo: Mapping[int, Outputs], name: str) -> set[str]:
    return {k for o in memo.values() if isinstance(o.get(name), dict) for k in o[name]}  # type: ignore[union-attr]
