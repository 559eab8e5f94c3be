"""One pass over the inputs through every runtime of a verify: each batch goes through all of them in turn.

A ``Stream`` is one runtime fed the input stream: it gathers its outputs batch by batch,
its timings, or the error that stopped it (a runtime that fails to load or to run keeps
its error and gets nothing more; the others go on). A place whose calls are expensive
(a board: a process start per call) subclasses it (``runtime_check.verify.device_rows``)
and runs what it was fed in ``finish``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from edgefm.core.errors import UsageError
from edgefm.data.inputs import Inputs
from runtime_check.runtimes.base import Runtime

#: what a stream's total time is the sum of
TIMED = ("load", "infer", "batch1")


@dataclass
class Stream:
    """One runtime fed the input stream: its outputs gathered batch by batch, its timings, or what stopped it."""

    name: str
    runtime: Runtime
    timings: dict[str, float] = field(default_factory=dict)
    error: BaseException | None = None
    parts: dict[str, list[np.ndarray]] = field(default_factory=dict)
    b1: dict[str, list[np.ndarray]] = field(default_factory=dict)

    @property
    def outputs(self) -> dict[str, np.ndarray]:
        return _concatenated(self.parts)

    @property
    def batch1(self) -> dict[str, np.ndarray]:
        return _concatenated(self.b1)

    def activate(self) -> None:
        t0 = time.perf_counter()
        try:
            self.runtime.activate()
        except KeyboardInterrupt:
            raise
        except Exception as e:  # noqa: BLE001 - recorded per runtime
            self.error = e
        self.timings["load"] = time.perf_counter() - t0

    def feed(self, batch: Mapping[str, np.ndarray]) -> None:
        """One batch of the pass over the inputs."""
        self._feed(batch, self.parts, "infer")

    def feed_one(self, batch: Mapping[str, np.ndarray]) -> None:
        """One image of the batch-1 runs."""
        self._feed(batch, self.b1, "batch1")

    def flush(self) -> None:
        """After the pass: run what was held back (nothing here)."""

    def end(self) -> None:
        """After the pass: the runtime deactivated, the total time summed."""
        self.runtime.deactivate()

    def finish(self) -> None:
        """Before judging: nothing left to run here."""
        return None

    def total(self) -> None:
        self.timings["total"] = sum(self.timings.get(k, 0.0) for k in TIMED)

    def _feed(self, batch: Mapping[str, np.ndarray], into: dict[str, list[np.ndarray]], timing: str,
              call: Callable[[Mapping[str, np.ndarray]], Mapping[str, np.ndarray]] | None = None) -> None:
        if self.error is not None:
            return
        t0 = time.perf_counter()
        try:
            out = (call or self.runtime.infer)(batch)
        except KeyboardInterrupt:
            raise
        except Exception as e:  # noqa: BLE001 - one broken runtime must not stop the others
            self.error = e
            return
        finally:
            self.timings[timing] = self.timings.get(timing, 0.0) + time.perf_counter() - t0
        for k, v in out.items():
            into.setdefault(k, []).append(v)


@dataclass
class NativeStream(Stream):
    """A native row's stream: its batch-1 images run in one call after the pass (``infer_batched`` with
    batch size 1: the runner's own loop of batch-1 calls of the C API, as a device row's), not a
    request each, whose .npy traffic costs more than a small network's batch-1 run."""

    pending: list[Mapping[str, np.ndarray]] = field(default_factory=list)

    def feed_one(self, batch: Mapping[str, np.ndarray]) -> None:
        if self.error is None:
            self.pending.append(batch)

    def flush(self) -> None:
        if self.error is not None or not self.pending:
            return
        joined = {k: np.concatenate([p[k] for p in self.pending]) for k in self.pending[0]}
        self.pending = []
        self._feed(joined, self.b1, "batch1", lambda b: self.runtime.infer_batched(b, 1))


def stream_through(streams: list[Stream], data: Inputs, batch_size: int) -> None:
    """Activate every runtime, feed each batch of one pass over the inputs to all of them, then the batch-1 runs.

    A runtime that fails to load or to run keeps its error and gets nothing more;
    the others go on. Every runtime is deactivated at the end.
    """
    for s in streams:
        s.activate()
    try:
        for batch in data.batches(batch_size):
            for s in streams:
                s.feed(batch)
        for i in range(len(next(iter(data.head.values())))):
            for s in streams:
                s.feed_one({k: v[i : i + 1] for k, v in data.head.items()})
        for s in streams:
            s.flush()
    finally:
        for s in streams:
            s.end()
    for s in streams:
        s.total()


def run_runtime(runtime: Runtime, data: Inputs, batch_size: int) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, float]]:
    """One runtime through the whole stream: its outputs, batch-1 outputs and timings; its error is raised."""
    stream = Stream(runtime.name, runtime)
    stream_through([stream], data, batch_size)
    if stream.error is not None:
        raise stream.error
    timings = dict(stream.timings)
    timings.pop("total", None)
    return stream.outputs, stream.batch1, timings


def _concatenated(chunks: Mapping[str, list[np.ndarray]]) -> dict[str, np.ndarray]:
    """Per-batch outputs joined along the batch."""
    if not chunks:
        raise UsageError("no inputs to run (0 rows).")
    return {k: np.concatenate(v) for k, v in chunks.items()}
