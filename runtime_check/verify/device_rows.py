"""The device rows of ``edgefm verify``: the small hook ``runtime_check.verify.check`` calls.

``DeviceRows.prepare(cfg)`` readies every ``--device`` board once (tools, libraries,
prefix; for SSH the connection and the board's compiler). Then, per artifact,
``add_streams`` puts one extra ``Runtime`` per board into verify's own stream
(row ``NAME@<board label>``), and ``results`` judges each against TensorFlow with
the artifact's own bounds (``check.judge``, as the host rows), adds the
latency of the runner's warm in-process loop and the kernel-path ledger, and
returns the rows. ``describe`` is the report's ``devices`` section.

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

#: the runner's warm loop on one image for the latency of a device row
LATENCY_WARMUP = 3
LATENCY_RUNS = 20
#: the stream of an artifact's other host kernel path is named NAME + this + the ledger entry (never a row)
LEDGER_MARK = "~"


@dataclass
class DeviceStream:
    """Wraps verify's ``Stream`` for a device row: everything it is fed runs on the board in few runner processes.

    On a device every call is a process start (~3 s for ONNX Runtime to open a model
    under qemu), and verify feeds each batch and each batch-1 image as its own call.
    So the batches are spooled to a temporary file as they stream past (memory keeps
    one batch, as verify's does) and run in ``finish`` by one runner process with
    ``--batch-size`` (the same calls of the C API, in one process); then the batch-1
    images in one more with ``--batch-size 1``; then the warm latency loop.
    """

    stream: Any
    pending: list[dict[str, np.ndarray]] = field(default_factory=list)
    latency: Any = None
    spool: dict[str, Any] = field(default_factory=dict)  # input name -> temporary file of its rows
    rows: int = 0
    batch: int = 0
    sample: dict[str, tuple[tuple[int, ...], str]] = field(default_factory=dict)  # input name -> (row shape, dtype)

    _OWN = frozenset({"stream", "pending", "latency", "spool", "rows", "batch", "sample"})

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in DeviceStream._OWN:
            object.__setattr__(self, name, value)
        else:  # verify's stream_through records errors and timings on the stream it was given
            setattr(self.stream, name, value)

    @property
    def runtime(self) -> _KeepActive:
        """The runtime as ``stream_through`` sees it: its deactivate waits for ``finish`` (no second model load)."""
        return _KeepActive(self.stream.runtime)

    def _feed(self, batch: Mapping[str, np.ndarray], into: dict[str, list[np.ndarray]], timing: str) -> None:
        """One batch of named inputs (any model): spooled per input, in the model's own dtypes."""
        if self.stream.error is not None:
            return
        if timing == "batch1":
            self.pending.append(dict(batch))
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

    def finish(self) -> None:
        import time

        s = self.stream
        t0 = time.perf_counter()
        try:
            if s.error is not None:
                return
            if self.spool:
                feeds = {}
                for name, f in self.spool.items():
                    f.flush()
                    shape, dtype = self.sample[name]
                    feeds[name] = np.memmap(f, dtype=np.dtype(dtype), mode="r", shape=(self.rows, *shape))
                out = s.runtime.infer_batched(feeds, self.batch)
                del feeds
                for k, v in out.items():
                    s._parts.setdefault(k, []).append(v)
            s.timings["infer"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            if self.pending:
                joined = {k: np.concatenate([p[k] for p in self.pending]) for k in self.pending[0]}
                out = s.runtime.infer_batched(joined, 1)
                for k, v in out.items():
                    s._b1.setdefault(k, []).append(v)
                self.latency = s.runtime.time_calls(self.pending[0], warmup=LATENCY_WARMUP, runs=LATENCY_RUNS)
            s.timings["batch1"] = time.perf_counter() - t0
        except KeyboardInterrupt:
            raise
        except Exception as e:  # noqa: BLE001 - recorded for the row, as verify's Stream does
            s.error = e
        finally:
            s.runtime.deactivate()
            for f in self.spool.values():
                f.close()
            s.timings["total"] = sum(s.timings.get(k, 0.0) for k in ("load", "infer", "batch1"))


class _KeepActive:
    """A runtime whose ``deactivate`` is left to ``DeviceStream.finish``."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime

    def __getattr__(self, name: str) -> Any:
        return getattr(self._runtime, name)

    def deactivate(self) -> None:
        pass


@dataclass
class Board:
    """One prepared ``--device`` target: how to make its runtimes, or why it cannot run."""

    target: Target
    make: Callable[[Path, Artifact, str], Runtime] | None = None
    record: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    error: EdgefmError | None = None

    @property
    def suffix(self) -> str:
        return "@" + self.target.label


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

    def add_streams(self, name: str, art: Artifact, path: Path, streams: dict[str, Any], failed: dict[str, ArtifactResult],
                    stream: Callable[[str, Runtime], Any]) -> None:
        """One stream per board (row ``NAME@BOARD``), and one for the ledger's other host kernel path (no row)."""
        from runtime_check.device.ledger import host_path_runtime

        if (alt := host_path_runtime(path)) is not None:
            streams[name + LEDGER_MARK + alt[0]] = stream(name + LEDGER_MARK + alt[0], alt[1])
        for b in self.boards:
            row = name + b.suffix
            try:
                if b.error is not None:
                    raise b.error
                assert b.make is not None
                streams[row] = DeviceStream(stream(row, b.make(path, art, name)))
            except EdgefmError as e:
                failed[row] = ArtifactResult(row, f"device {b.target.spec}", art.path, art.format, art.quantization, [], str(e))

    def results(self, name: str, art: Artifact, streams: Mapping[str, Any], failed: Mapping[str, ArtifactResult],
                judge: Callable[..., tuple[ArtifactResult, dict[str, np.ndarray] | None]],
                host_outputs: Mapping[str, np.ndarray] | None) -> list[tuple[ArtifactResult, dict[str, np.ndarray] | None]]:
        """The device rows of artifact ``name``, judged; an SSH failure while running raises (no half report)."""
        from runtime_check.device.ledger import path_ledger
        from runtime_check.device.ssh import BoardError

        out = []
        for key, s in streams.items():
            if key.startswith(name + LEDGER_MARK) and host_outputs is not None:
                entry = key.removeprefix(name + LEDGER_MARK)
                ledger = self.ledger.setdefault(name, {})
                if s.error is not None:
                    ledger[entry] = {"error": str(s.error)}
                else:
                    ledger[entry] = path_ledger(host_outputs, s.outputs, art)
        for b in self.boards:
            row = name + b.suffix
            if row in failed:
                out.append((failed[row], None))
                continue
            ds = streams[row]
            ds.finish()
            s = ds.stream
            if isinstance(b.target, SshTarget) and isinstance(s.error, BoardError):
                raise s.error
            result, outputs = judge(s)
            if (golden := getattr(getattr(s.runtime, "place", None), "golden", None)) is not None:  # an SSH board's check.sh
                result.metrics.append(Metric.check("board_golden_check", golden[0], "PASS", "==", detail=golden[1]))
            latency = ds.latency
            if latency is not None and latency.p50_ms is not None:
                where = "emulated (qemu user mode), not the board's" if isinstance(b.target, QemuTarget) else "on the board"
                detail = f"the runner's warm loop, {latency.warmup} + {len(latency.latencies_ms)} calls on one image, {where}"
                result.metrics.append(Metric.check("device_p50_ms", round(latency.p50_ms, 4), None, "info", detail=detail))
                result.metrics.append(Metric.check("device_p99_ms", round(float(latency.p99_ms or 0.0), 4), None, "info",
                                                   detail=detail))
            if outputs is not None and host_outputs is not None:
                entry = path_ledger(host_outputs, outputs, art)
                self.ledger.setdefault(name, {})[f"x86 vs {b.target.label}"] = entry
                result.metrics.append(Metric.check(
                    "x86_exact_match", entry["exact_match_rate"], None, "info",
                    detail=f"share of output values identical to the x86 binding's; max difference {entry['max_abs_diff']:.3g}"
                    + (f"; {entry['over_one_step']} values differ by more than one quantization step" if entry.get("flagged") else ""),
                ))
            out.append((result, outputs))
        return out

    def versions(self) -> dict[str, str]:
        return {k: v for b in self.boards for k, v in b.versions.items()}

    def describe(self) -> dict[str, Any]:
        return {
            "boards": {b.target.label: b.record for b in self.boards},
            **({"ledger": self.ledger} if self.ledger else {}),
        }
