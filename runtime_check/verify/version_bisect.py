"""``verify --runtime-range --bisect`` on verify's own artifacts, inputs and bounds (the search is ``runtime_check.versions.bisect``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgefm.core.errors import UsageError
from runtime_check.versions.bisect import FLOAT_STEP, BisectResult, RunnerFactory, bisect, versions_in
from runtime_check.versions.spec import RuntimeRange, RuntimeSpec

#: rows of the verify inputs each version runs in a bisect (enough to see a kernel change, cheap per version)
BISECT_SAMPLES = 1000


def run_bisect(cfg: Any, rng: RuntimeRange, *, runner: RunnerFactory | None = None,
               available: list[str] | None = None) -> BisectResult:
    """``verify --runtime-range --bisect`` as a library call: the artifacts of ``rng``'s format on verify's inputs."""
    from dataclasses import replace

    from edgefm.core.contract import TFLITE_FORMAT
    from edgefm.core.manifest import Manifest
    from edgefm.formats.tflite_file import tflite_output_steps
    from runtime_check.verify.check import artifact_tolerance, load_inputs, select_artifacts
    from runtime_check.versions.environment import available_versions
    from runtime_check.versions.spec import PACKAGES

    root = Path(cfg.artifacts)
    manifest = Manifest.load(root)
    fmt = PACKAGES[rng.package].format
    arts = {n: a for n, a in select_artifacts(manifest, cfg).items() if a.format == fmt}
    if not arts:
        raise UsageError(f"--runtime-range {rng.text}: no {fmt} artifact to run in {rng.package}.")
    specs = [RuntimeSpec(rng.package, v) for v in versions_in(rng, available or available_versions(rng.package))]
    data = load_inputs(replace(cfg, samples=min(cfg.samples or BISECT_SAMPLES, BISECT_SAMPLES)), manifest)
    feeds = next(iter(data.batches(BISECT_SAMPLES)))
    float_steps = {n: (artifact_tolerance(manifest, root, n, a, cfg).max_abs or FLOAT_STEP) for n, a in arts.items()}
    steps = {n: tflite_output_steps(root / a.path) for n, a in arts.items()} if fmt == TFLITE_FORMAT else {}
    return bisect(specs, {n: root / a.path for n, a in arts.items()}, feeds, float_steps=float_steps, runner=runner,
                  steps=steps)
