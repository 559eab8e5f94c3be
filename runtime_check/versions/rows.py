"""The runtime-version rows of ``edgefm verify --runtime PKG==VERSION``: runner kinds made from the option.

``VersionRows.prepare(specs)`` builds (or finds) every version's environment first, so an
unknown version or a dead network stops the command before TensorFlow runs (exit 2).
Each version is then one ``RunnerKind`` of role ``VERSION`` (``runtime_check.runtimes.registry``)
whose runtime is ``PinnedRuntime(path, spec=...)``: verify's row planner gives it a row
``NAME@tflite-runtime-2.14.0`` per artifact of its format, judged against TensorFlow with
the artifact's own bounds like the binding's. A version that cannot run on this machine
(``RuntimeUnavailableError``) still gets its rows: they did not run, and say why.
"""

from __future__ import annotations

from typing import Any

from edgefm.core.errors import RuntimeUnavailableError
from runtime_check.runtimes.registry import VERSION, RunnerKind
from runtime_check.versions.environment import RuntimeEnvironment, ensure_environment
from runtime_check.versions.spec import RuntimeSpec

SEPARATOR = "@"
IMPLEMENTATION = "runtime_check.versions.runtime:PinnedRuntime"


def version_kind(spec: RuntimeSpec) -> RunnerKind:
    """The runner kind of one released version: its rows are ``NAME@<package>-<version>``."""
    return RunnerKind(spec.label, spec.info.format, VERSION, IMPLEMENTATION, label=spec.label,
                      options=(("spec", spec.requirement),))


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

    @property
    def kinds(self) -> list[RunnerKind]:
        return [version_kind(spec) for spec, _, _ in self.envs]

    def versions(self) -> dict[str, str]:
        return {f"{spec.package}{SEPARATOR}{spec.version}": env.module_version
                for spec, env, _ in self.envs if env is not None}

    def describe(self) -> dict[str, Any]:
        return {spec.label: (env.describe() if env is not None else {"error": str(err)}) for spec, env, err in self.envs}
