"""The runtime-version rows of ``edgefm verify --runtime PKG==VERSION``: the small hook ``check`` calls.

``VersionRows.prepare(cfg)`` builds (or finds) every version's environment first, so
an unknown version or a dead network stops the command before TensorFlow runs
(exit 2). Per artifact of the format a version runs, ``add_streams`` puts a
``PinnedRuntime`` into verify's stream as row ``NAME@tflite-runtime-2.14.0``, and
``results`` judges it against TensorFlow with the artifact's own bounds, like the
host rows. A version that cannot run here (``RuntimeUnavailableError``) and a file
it cannot load become rows that did not run, with the reason; the others run.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from edgefm.core.errors import EdgefmError, RuntimeUnavailableError
from edgefm.core.manifest import Artifact
from runtime_check.runtimes.base import Runtime
from runtime_check.verify.compare import ArtifactResult
from runtime_check.versions.environment import RuntimeEnvironment, ensure_environment
from runtime_check.versions.runtime import PinnedRuntime
from runtime_check.versions.spec import RuntimeSpec

SEPARATOR = "@"


class VersionRows:
    def __init__(self, envs: list[tuple[RuntimeSpec, RuntimeEnvironment | None, RuntimeUnavailableError | None]]) -> None:
        self.envs = envs

    @classmethod
    def prepare(cls, specs: tuple[RuntimeSpec, ...]) -> VersionRows:
        envs: list[tuple[RuntimeSpec, RuntimeEnvironment | None, RuntimeUnavailableError | None]] = []
        for spec in specs:
            try:
                envs.append((spec, ensure_environment(spec), None))
            except RuntimeUnavailableError as e:  # cannot run on this machine: said in its rows, not raised
                envs.append((spec, None, e))
        return cls(envs)

    def _rows(self, name: str, art: Artifact) -> list[tuple[str, RuntimeSpec, RuntimeEnvironment | None, Exception | None]]:
        return [(f"{name}{SEPARATOR}{spec.label}", spec, env, err) for spec, env, err in self.envs
                if spec.info.format == art.format]

    def add_streams(self, name: str, art: Artifact, path: Path, streams: dict[str, Any],
                    failed: dict[str, ArtifactResult], stream: Callable[[str, Runtime], Any]) -> None:
        for row, spec, env, err in self._rows(name, art):
            try:
                if err is not None:
                    raise err
                # a file the version cannot load fails in verify's activate, with the op it lacks
                streams[row] = stream(row, PinnedRuntime(path, spec, environment=env))
            except EdgefmError as e:
                failed[row] = ArtifactResult(row, spec.label, art.path, art.format, art.quantization, [], str(e))

    def results(self, name: str, art: Artifact, streams: Mapping[str, Any], failed: Mapping[str, ArtifactResult],
                judge: Callable[..., tuple[ArtifactResult, dict[str, np.ndarray] | None]],
                ) -> list[tuple[ArtifactResult, dict[str, np.ndarray] | None]]:
        out = []
        for row, _spec, _env, _err in self._rows(name, art):
            if row in failed:
                out.append((failed[row], None))
            else:
                out.append(judge(streams[row]))
        return out

    def versions(self) -> dict[str, str]:
        return {f"{spec.package}{SEPARATOR}{spec.version}": env.module_version
                for spec, env, _ in self.envs if env is not None}

    def describe(self) -> dict[str, Any]:
        return {spec.label: (env.describe() if env is not None else {"error": str(err)}) for spec, env, err in self.envs}
