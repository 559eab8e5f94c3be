"""Verify's rows as data: an artifact, a runner kind, a place, and the row it must equal; planned once.

``plan_rows`` makes every row of a verify in report order (per artifact: its binding, its
``--device`` boards, its ``--native`` runners); ``open_row`` makes a row's ``Stream``; after
one pass over the inputs (``streams.stream_through``), ``judge_row`` judges every row kind the
same way: its outputs against TensorFlow with the artifact's bounds, plus the exact match with
the row it ``equals`` (a native runner's binding). A row's name (``NAME``, ``NAME@native``,
``NAME@BOARD``) is derived from it for the report, never parsed back. As Polygraphy's
``Comparator.run(runners)``, the loop never changes when a runner kind or a place is added
(``runtime_check.runtimes.registry``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgefm.core.errors import EdgefmError
from edgefm.core.manifest import Artifact, TensorSpec
from runtime_check.runtimes.registry import (
    BINDING,
    MICRO,
    NATIVE,
    NATIVE_LABEL,
    VERSION,
    RunnerKind,
    format_of,
    runner_kinds,
)
from runtime_check.verify.compare import compare_exact, compare_outputs
from runtime_check.verify.device_rows import Board, DeviceRows
from runtime_check.verify.results import ArtifactResult, Metric, row_name
from runtime_check.verify.streams import NativeStream, Stream
from runtime_check.verify.tolerances import Tolerance


@dataclass(frozen=True)
class Row:
    """One verify row: artifact ``artifact`` run by ``runner`` at ``board`` (None: this machine)."""

    artifact: str
    art: Artifact
    path: Path
    runner: RunnerKind
    board: Board | None = field(default=None, compare=False)
    #: the name of the row whose outputs this one must equal exactly (a native runner's binding)
    equals: str | None = None

    @property
    def label(self) -> str:
        """Where or how it runs, for its name: "" for the binding, ``native``, a board's label."""
        return self.board.label if self.board is not None else self.runner.label

    @property
    def name(self) -> str:
        return row_name(self.artifact, self.label)

    @property
    def is_binding(self) -> bool:
        return self.board is None and self.runner.role == BINDING

    def unrun(self, error: EdgefmError) -> ArtifactResult:
        """The result of a row whose runtime could not even be made."""
        what = (self.art.format if self.is_binding else f"device {self.board.target.spec}" if self.board is not None
                else self.runner.name if self.runner.role == VERSION else NATIVE_LABEL)
        return ArtifactResult(self.name, what, self.art.path, self.art.format, self.art.quantization, [], str(error))


#: quantizations TFLite Micro has kernels for (float16 weights and dynamic range fail to prepare: measured)
MICRO_QUANTIZATIONS = ("int8", "none", "float32")


def plan_rows(selected: Mapping[str, Artifact], root: Path, *, native: bool,
              devices: DeviceRows | None, micro: bool = False, versions: Iterable[RunnerKind] = ()) -> list[Row]:
    """Every row of one verify, in the report's order: per artifact its binding, its boards, its native runners,
    its microcontroller runtimes (``--micro``: the variants TFLM has kernels for), then its released runtime
    versions (``--runtime``: kinds of role ``VERSION``, one per version)."""
    versions = tuple(versions)
    rows: list[Row] = []
    for name, art in selected.items():
        path = root / art.path
        binding = runner_kinds(art.format, BINDING)
        natives = runner_kinds(art.format, NATIVE)
        if binding:
            rows.append(Row(name, art, path, binding[0]))
        if devices is not None and natives:
            rows += [Row(name, art, path, natives[0], board=b) for b in devices.boards]
        if native:
            rows += [Row(name, art, path, kind, equals=name) for kind in natives]
        if micro and art.quantization in MICRO_QUANTIZATIONS:
            rows += [Row(name, art, path, kind) for kind in runner_kinds(art.format, MICRO)]
        rows += [Row(name, art, path, kind) for kind in versions if kind.format == art.format]
    return rows


def open_row(row: Row, devices: DeviceRows | None) -> Stream:
    """The row's stream (its runtime made, not loaded); an ``EdgefmError`` means the row cannot run."""
    if row.board is not None:
        assert devices is not None
        return devices.open(row.board, row.name, row.art, row.path, row.artifact)
    if format_of(row.path) != row.runner.format:
        raise EdgefmError(f"{row.path}: not a {row.runner.format} file, which {row.runner.name} runs.")
    return (NativeStream if row.equals else Stream)(row.name, row.runner.make(row.path))


@dataclass
class Judging:
    """What every row is judged against: the reference's outputs, the labels, each artifact's bounds."""

    reference: Mapping[str, np.ndarray]
    labels: np.ndarray | None
    tolerances: Mapping[str, Tolerance]
    classification: Iterable[str] | None
    devices: DeviceRows | None = None
    #: row name -> its outputs (None: it did not run), for the rows that must equal it
    outputs: dict[str, dict[str, np.ndarray] | None] = field(default_factory=dict)
    #: the reference's inputs and outputs: every row's tensors are matched to them (``Runtime.expecting``)
    io: tuple[list[TensorSpec], list[TensorSpec]] | None = None


def judge_row(row: Row, opened: Stream | ArtifactResult, ctx: Judging, *,
              checksum: Metric | None = None) -> tuple[ArtifactResult, dict[str, np.ndarray] | None]:
    """One row against the reference (its checksum first, for a binding), then the row it must equal."""
    if isinstance(opened, ArtifactResult):  # never made: its error is the result
        if checksum is not None:
            opened.metrics.insert(0, checksum)
        ctx.outputs[row.name] = None
        return opened, None
    if row.board is not None:
        DeviceRows.finish(row.board, opened)
    # a device row is held to the bounds alone, as compare guesses the classification outputs by name
    classification = None if row.board is not None or ctx.classification is None else set(ctx.classification)
    equal_to = ctx.outputs.get(row.equals) if row.equals is not None else None
    result, outputs = judge(opened, row.art, ctx.reference, ctx.labels, ctx.tolerances[row.artifact],
                            checksum=checksum, binding=equal_to, classification=classification)
    if row.equals is not None and equal_to is None and result.error is None:
        result.metrics.append(Metric.check("binding_max_abs_diff", "binding did not run", "same", "=="))
    if row.board is not None:
        assert ctx.devices is not None
        ctx.devices.add_metrics(row.board, row.artifact, row.art, opened, result, outputs,
                                ctx.outputs.get(row.artifact))
    ctx.outputs[row.name] = outputs
    return result, outputs


def judge(
    stream: Stream,
    art: Artifact,
    reference: Mapping[str, np.ndarray],
    labels: np.ndarray | None,
    tol: Tolerance,
    *,
    checksum: Metric | None = None,
    binding: Mapping[str, np.ndarray] | None = None,
    classification: set[str] | None = None,
) -> tuple[ArtifactResult, dict[str, np.ndarray] | None]:
    """One streamed runtime's outputs against the reference; its error becomes the result's ``error``.

    With ``binding`` (the Python binding's outputs of the same file), the exact
    match of the two runs is checked as well. Returns the outputs for reuse.
    """
    result = ArtifactResult(stream.name, stream.runtime.name, art.path, art.format, art.quantization)
    if checksum is not None:
        result.metrics.append(checksum)
    result.timings.update(stream.timings)
    outputs = None
    try:
        if stream.error is not None:
            raise stream.error
        outputs = stream.outputs
        result.metrics.extend(compare_outputs(outputs, reference, labels, tol, batch1=stream.batch1,
                                              classification=classification))
        if binding is not None:
            result.metrics.append(compare_exact(outputs, binding))
        if stream.runtime.io_match:  # a file without the reference's tensor names (a .tflite without SignatureDefs)
            result.metrics.append(Metric.check("io_names", "matched", None, "info", detail=stream.runtime.io_match))
    except KeyboardInterrupt:
        raise
    except Exception as e:  # noqa: BLE001 - one broken artifact must not hide the others' results
        result.error = describe_error(e)
    return result, outputs


def describe_error(e: BaseException) -> str:
    return str(e) if isinstance(e, EdgefmError) else f"{type(e).__name__}: {e}"


def runtime_versions(stream: Stream | ArtifactResult) -> dict[str, str]:
    """A row's library versions; a runtime that cannot tell (or never ran) is not an error."""
    if isinstance(stream, ArtifactResult):
        return {}
    try:
        return dict(stream.runtime.versions())
    except Exception:  # noqa: BLE001 - versions are informational
        return {}


def row_report_line(result: ArtifactResult) -> str:
    return f"{result.name}: {result.runtime} {result.verdict} ({result.timings.get('total', 0.0):.1f} s)"

