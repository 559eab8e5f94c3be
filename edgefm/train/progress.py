"""Console progress for training: a live line per epoch and a final table (stderr/stdout)."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:  # pragma: no cover
    from edgefm.core.manifest import Manifest
    from edgefm.train.config import TrainConfig


@dataclass
class EpochStats:
    """What one epoch measured (the trainer's history; the reporter prints it)."""

    epoch: int
    train_loss: float
    train_accuracy: float
    test_loss: float
    test_accuracy: float
    seconds: float


class TrainReporter:
    """Prints training progress; ``quiet`` silences everything but errors."""

    def __init__(self, quiet: bool = False, stream: TextIO | None = None) -> None:
        self.quiet = quiet
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty()
        self._epoch = (0, 0, 0)
        self._rate_unit = "batch/s"

    def _write(self, text: str) -> None:
        if not self.quiet:
            self.stream.write(text)
            self.stream.flush()

    def note(self, text: str) -> None:
        self._write(f"{text}\n")

    def start(self, cfg: TrainConfig, n_params: int, start_epoch: int, cluster: str | None = None) -> None:
        """``cluster``: how the cluster shares each batch (``None``: one process)."""
        resumed = f", resuming after epoch {start_epoch}" if start_epoch else ""
        batch = f"batch {cfg.batch_size}" if cluster is None else cluster
        # On a cluster a step is one global batch of the whole cluster: the rate says so.
        self._rate_unit = "batch/s" if cluster is None else "global batch/s, whole cluster"
        self._write(
            f"training {cfg.model.value} ({n_params:,} parameters) for {cfg.epochs} epochs, {batch}, "
            f"SGD lr {cfg.learning_rate:g}, seed {cfg.seed}, {'eager' if cfg.eager else 'graph'} mode{resumed}\n"
        )

    def epoch_start(self, epoch: int, epochs: int, batches: int) -> None:
        self._epoch = (epoch, epochs, batches)

    def epoch_progress(self, done: int, loss: float, acc: float, seconds: float) -> None:
        if not self.live:
            return
        epoch, epochs, batches = self._epoch
        width = 24
        filled = int(width * done / max(batches, 1))
        rate = done / seconds if seconds > 0 else 0.0
        self._write(
            f"\repoch {epoch}/{epochs} [{'#' * filled}{'-' * (width - filled)}] {done}/{batches} "
            f"loss {loss:.4f} acc {100 * acc:5.2f}% {rate:,.0f} {self._rate_unit}"
        )

    def epoch_end(self, s: EpochStats, batches: int) -> None:
        epoch, epochs, _ = self._epoch
        clear = "\r\033[K" if self.live else ""
        self._write(
            f"{clear}epoch {epoch}/{epochs}: loss {s.train_loss:.4f} acc {100 * s.train_accuracy:5.2f}% | "
            f"test loss {s.test_loss:.4f} acc {100 * s.test_accuracy:5.2f}% | {s.seconds:.2f} s "
            f"({batches / s.seconds:,.0f} {self._rate_unit})\n"
        )

    def finish(self, manifest: Manifest) -> None:
        t: dict[str, Any] = manifest.training
        rows = [
            ("epoch", "train loss", "train acc", "test loss", "test acc", "seconds"),
            *[
                (
                    str(h["epoch"]),
                    f"{h['train_loss']:.4f}",
                    f"{100 * h['train_accuracy']:.2f}%",
                    f"{h['test_loss']:.4f}",
                    f"{100 * h['test_accuracy']:.2f}%",
                    f"{h['seconds']:.2f}",
                )
                for h in t["history"]
            ],
        ]
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = ["  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in rows]
        lines.insert(1, "  ".join("-" * w for w in widths))
        _, saved = manifest.savedmodel()
        self._write(
            "\n".join(lines)
            + f"\nSavedModel {saved.path}: test accuracy {100 * t['test_accuracy']:.2f}%, "
            f"test loss {t['test_loss']:.4f} (measured on the saved model)\n"
        )
