"""The device places of ``edgefm verify``: the boards its device rows run on (``runtime_check.verify.rows``).

``DeviceRows.prepare(cfg)`` readies every ``--device`` board once (tools, libraries,
prefix; for SSH the connection and the board's compiler). Verify plans one row per
artifact and board (``NAME@<board label>``); ``open`` gives its ``DeviceStream``,
``finish`` runs what it was fed on the board, and after verify's one judge
(``rows.judge_row``, the host rows' bounds) ``add_metrics`` adds the latency of the
runner's warm in-process loop and the kernel-path ledger. ``describe`` is the
report's ``devices`` section.

An emulated board whose packages are missing gives rows that did not run, with
the error that names what to install; the host rows still run. An SSH board
that cannot be reached, has no compiler or drops the connection raises: the
report is not written half.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgefm.core.errors import EdgefmError
from edgefm.core.manifest import Artifact
from runtime_check.device.targets import QemuTarget, SshTarget, Target
from runtime_check.runtimes.base import Runtime
from runtime_check.verify.results import ArtifactResult, Metric
from runtime_check.verify.streams import Stream

#: the runner's warm loop on one image for the latency of a device row
LATENCY_WARMUP = 3
LATENCY_RUNS = 20
#: the stream of an artifact's other host kernel path is named NAME + this + the ledger entry (never a row)
LEDGER_MARK = "~"


class DeviceStream(Stream):
    """A device row's stream: everything it is fed runs on the board in few runner processes.

    On a device every call is a process start (~3 s for ONNX Runtime to open a model
    under qemu), and verify feeds each batch and each batch-1 image as its own call.
    So the batches are spooled to a temporary file as they stream past (memory keeps
    one batch, as verify's does) and run in ``finish`` by one runner process with
    ``--batch-size`` (the same calls of the C API, in one process); then the batch-1
    images in one more with ``--batch-size 1``; then the warm latency loop.
    """

    def __init__(self, name: str, runtime: Runtime) -> None:
        super().__init__(name, runtime)
        self.pending: list[dict[str, np.ndarray]] = []
        self.latency: Any = None
        self.spool: dict[str, Any] = {}  # input name -> temporary file of its rows
        self.rows = 0
        self.batch = 0
        self.sample: dict[str, tuple[tuple[int, ...], str]] = {}  # input name -> (row shape, dtype)

    def feed(self, batch: Mapping[str, np.ndarray]) -> None:
        """One batch of named inputs (any model): spooled per input, in the model's own dtypes."""
        if self.error is not None:
            return
        import tempfile

        for name, value in batch.items():
            arr = np.ascontiguousarray(value)
            if name not in self.spool:
                self.spool[name] = tempfile.TemporaryFile(prefix="edgefm-device-")
                self.sample[name] = (arr.shape[1:], arr.dtype.str)
                self.batch = self.batch or len(arr)
            self.spool[name].write(arr.tobytes())
        self.rows += len(next(iter(batch.values())))

    def feed_one(self, batch: Mapping[str, np.ndarray]) -> None:
        if self.error is None:
            self.pending.append(dict(batch))

    def end(self) -> None:
        """Kept active: ``finish`` runs what was fed (no second model load)."""

    def finish(self) -> None:
        import time

        t0 = time.perf_counter()
        try:
            if self.error is not None:
                return
            if self.spool:
                feeds = {}
                for name, f in self.spool.items():
                    f.flush()
                    shape, dtype = self.sample[name]
                    feeds[name] = np.memmap(f, dtype=np.dtype(dtype), mode="r", shape=(self.rows, *shape))
                out = self.runtime.infer_batched(feeds, self.batch)
                del feeds
                for k, v in out.items():
                    self.parts.setdefault(k, []).append(v)
            self.timings["infer"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            if self.pending:
                joined = {k: np.concatenate([p[k] for p in self.pending]) for k in self.pending[0]}
                out = self.runtime.infer_batched(joined, 1)
                for k, v in out.items():
                    self.b1.setdefault(k, []).append(v)
                self.latency = self.runtime.time_calls(self.pending[0], warmup=LATENCY_WARMUP, runs=LATENCY_RUNS)
            self.timings["batch1"] = time.perf_counter() - t0
        except KeyboardInterrupt:
            raise
        except Exception as e:  # noqa: BLE001 - recorded for the row, as verify's Stream does
            self.error = e
        finally:
            self.runtime.deactivate()
            for f in self.spool.values():
                f.close()
            self.total()


@dataclass
class Board:
    """One prepared ``--device`` target: how to make its runtimes, or why it cannot run."""

    target: Target
    make: Callable[[Path, Artifact, str], Runtime] | None = None
    record: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    error: EdgefmError | None = None

    @property
    def label(self) -> str:
        """The place's name in its rows' names (``NAME@LABEL``)."""
        return self.target.label


def _prepare(target: Target, cfg: Any) -> Board:
    if isinstance(target, QemuTarget):
        from runtime_check.device.emulated import emulated_runtime_for, prepare_board

        try:
            board = prepare_board(target)
        except EdgefmError as e:  # missing packages: these rows say what to install, the rest of verify runs
            return Board(target, error=e, record={"kind": "emulated", "spec": target.spec, "error": str(e)})
        return Board(target, lambda path, _art, _name: emulated_runtime_for(path, board), board.describe(),
                     board.versions())
    from runtime_check.device.ssh import connect_board

    ssh = connect_board(target, artifacts=Path(cfg.artifacts), data_dir=cfg.data_dir, verify_data=cfg.verify_data)
    return Board(target, ssh.runtime_for, ssh.describe(), ssh.versions())


class DeviceRows:
    """Every ``--device`` board of one verify."""

    def __init__(self, boards: list[Board]) -> None:
        self.boards = boards
        self.ledger: dict[str, dict[str, Any]] = {}

    @classmethod
    def prepare(cls, cfg: Any) -> DeviceRows:
        return cls([_prepare(t, cfg) for t in cfg.devices])

    def ledger_streams(self, name: str, path: Path) -> list[Stream]:
        """The stream of the artifact's other host kernel path (the ledger's, never a row), if it has one."""
        from runtime_check.device.ledger import host_path_runtime

        if (alt := host_path_runtime(path)) is None:
            return []
        return [Stream(name + LEDGER_MARK + alt[0], alt[1])]

    def record_ledger(self, name: str, art: Artifact, streams: list[Stream],
                      host_outputs: Mapping[str, np.ndarray] | None) -> None:
        """The artifact's other host kernel path against its binding (``host_outputs``), in the ledger."""
        from runtime_check.device.ledger import path_ledger

        if host_outputs is None:
            return
        for s in streams:
            entry = s.name.removeprefix(name + LEDGER_MARK)
            ledger = self.ledger.setdefault(name, {})
            ledger[entry] = {"error": str(s.error)} if s.error is not None else path_ledger(host_outputs, s.outputs, art)

    @staticmethod
    def open(board: Board, row_name: str, art: Artifact, path: Path, artifact: str) -> DeviceStream:
        """The stream of one device row; a board that is not ready raises its error (the row did not run)."""
        if board.error is not None:
            raise board.error
        assert board.make is not None
        return DeviceStream(row_name, board.make(path, art, artifact))

    @staticmethod
    def finish(board: Board, stream: Stream) -> None:
        """Run what the row was fed on the board; an SSH failure while running raises (no half report)."""
        from runtime_check.device.ssh import BoardError

        stream.finish()
        if isinstance(board.target, SshTarget) and isinstance(stream.error, BoardError):
            raise stream.error

    def add_metrics(self, board: Board, artifact: str, art: Artifact, stream: Stream, result: ArtifactResult,
                    outputs: Mapping[str, np.ndarray] | None, host_outputs: Mapping[str, np.ndarray] | None) -> None:
        """A judged device row's own metrics: the board's golden check, the warm latency, the x86 ledger entry."""
        from runtime_check.device.ledger import path_ledger

        if (golden := getattr(getattr(stream.runtime, "place", None), "golden", None)) is not None:  # SSH check.sh
            result.metrics.append(Metric.check("board_golden_check", golden[0], "PASS", "==", detail=golden[1]))
        latency = getattr(stream, "latency", None)
        if latency is not None and latency.p50_ms is not None:
            where = "emulated (qemu user mode), not the board's" if isinstance(board.target, QemuTarget) else "on the board"
            detail = f"the runner's warm loop, {latency.warmup} + {len(latency.latencies_ms)} calls on one image, {where}"
            result.metrics.append(Metric.check("device_p50_ms", round(latency.p50_ms, 4), None, "info", detail=detail))
            result.metrics.append(Metric.check("device_p99_ms", round(float(latency.p99_ms or 0.0), 4), None, "info",
                                               detail=detail))
        if outputs is not None and host_outputs is not None:
            entry = path_ledger(host_outputs, outputs, art)
            self.ledger.setdefault(artifact, {})[f"x86 vs {board.target.label}"] = entry
            result.metrics.append(Metric.check(
                "x86_exact_match", entry["exact_match_rate"], None, "info",
                detail=f"share of output values identical to the x86 binding's; max difference {entry['max_abs_diff']:.3g}"
                + (f"; {entry['over_one_step']} values differ by more than one quantization step" if entry.get("flagged") else ""),
            ))

    def versions(self) -> dict[str, str]:
        return {k: v for b in self.boards for k, v in b.versions.items()}

    def describe(self) -> dict[str, Any]:
        return {
            "boards": {b.target.label: b.record for b in self.boards},
            **({"ledger": self.ledger} if self.ledger else {}),
        }
