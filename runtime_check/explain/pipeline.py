"""``edgefm verify`` as one library call: verify, then explain the failing artifacts, then repair the int8 ones.

``run_verify(cfg, explain=..., repairer=...)`` is what the command does, callable from
Python; the CLI only parses options and prints the ``VerifyOutcome``. It lives at the
top of runtime_check (explain imports verify, never the other way). The repair exports
``NAME_mixed`` variants, which is export's work: ``runtime_check`` never imports
``export``, so the caller passes a ``Repairer`` (the CLI's wraps ``export.pipeline``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from runtime_check.explain.explain import Explanation
from runtime_check.explain.repair import KeepFloatQuantizer, Repair
from runtime_check.verify.config import CheckConfig
from runtime_check.verify.report import ParityReport


class Repairer(Protocol):
    """What ``--repair`` needs of export: the keep-float quantizer and the export of a proposed set."""

    def quantizer(self, name: str, fmt: str) -> KeepFloatQuantizer: ...

    def export_keep_float(self, fmt: str, keep_float: tuple[str, ...], like: str, progress: Any) -> str: ...


@dataclass
class VerifyOutcome:
    """The report (with its explanations and repairs, written), and the records themselves."""

    report: ParityReport
    explained: dict[str, Explanation] = field(default_factory=dict)
    repairs: dict[str, Repair] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.report.passed


def run_verify(cfg: CheckConfig, *, explain: Iterable[str] = (), repairer: Repairer | None = None,
               progress: Any = None, on_line: Callable[[str], None] | None = None) -> VerifyOutcome:
    """Verify every artifact; with ``explain`` (names, or ``[""]``/``[]`` with a repairer: every failing one)
    explain them layer by layer; with ``repairer`` search the layers to keep in float, export the proposals
    and verify again. ``progress``: an ``edgefm.core.progress.Progress``; ``on_line``: verify's line callback.
    """
    from runtime_check.explain.explain import explain_names, run_explain
    from runtime_check.verify.check import run_check

    names = tuple(explain) or (("",) if repairer is not None else ())
    if names:
        explain_names(cfg, names)  # a mistyped name fails now, not after the whole verify
    outcome = VerifyOutcome(run_check(cfg, progress=on_line))
    if names:
        outcome.explained = run_explain(cfg, outcome.report, names, progress=progress)
    if repairer is not None:
        outcome.report, outcome.repairs = _repair(cfg, outcome.report, outcome.explained, repairer, progress, on_line)
    return outcome


def _repair(cfg: CheckConfig, report: ParityReport, explained: dict[str, Explanation], repairer: Repairer,
            progress: Any, on_line: Callable[[str], None] | None) -> tuple[ParityReport, dict[str, Repair]]:
    """The search per explained int8 artifact, the proposed sets exported, then verify again."""
    from edgefm.core.manifest import Manifest
    from runtime_check.explain.repair import run_repair
    from runtime_check.verify.check import add_explanations, run_check

    if progress is not None:
        progress.start("repair: measuring each layer kept in float")
    repairs = run_repair(cfg, explained, repairer.quantizer)
    exported = []
    arts = Manifest.load(cfg.artifacts).deployable()
    for name, r in repairs.items():
        if r.proposal is not None and r.proposal.keep_float:
            r.exported = repairer.export_keep_float(arts[name].format, r.proposal.keep_float, name, progress)
            exported.append(r.exported)
    if exported:  # the report holds the fully quantized and the repaired artifacts side by side
        only = (*cfg.only, *exported) if cfg.only else ()
        report = run_check(replace(cfg, only=only), progress=on_line)
        verdicts = {a.name: a.passed for a in report.artifacts}
        for r in repairs.values():
            r.verified = verdicts.get(r.exported or "")
    if repairs or exported:
        add_explanations(report, explained, repairs)
    return report, repairs
