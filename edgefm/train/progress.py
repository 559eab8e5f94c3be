"""Training progress: the run's header, a live line per epoch, one line per finished epoch (with the ETA of the
run) and the final table, said through an ``edgefm.core.progress.Progress`` the caller chooses."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TextIO

from edgefm.core.progress import LineProgress, NoProgress, Progress, format_seconds, plural

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


@dataclass
class TrainResult:
    """What a run produced: the manifest (None on a worker that is not the chief, which writes it) and the history.

    Beside ``EpochStats`` so that the trainer and the ``--workers`` launcher both return it without
    importing each other.
    """

    manifest: Manifest | None
    history: list[EpochStats] = field(default_factory=list)


class TrainReporter:
    """Says what training does through a ``Progress``: the run, a live line per epoch, the final table.

    The CLI passes the ``Progress`` (a live bar on a terminal, timestamped lines with an
    ETA off it); a Python caller gets timestamped lines on ``stream`` (stderr), or
    nothing with ``quiet``.
    """

    def __init__(self, quiet: bool = False, stream: TextIO | None = None, progress: Progress | None = None) -> None:
        self.quiet = quiet
        if progress is None:
            progress = NoProgress() if quiet else LineProgress(stream or sys.stderr)
        self.progress = progress
        self._epoch = (0, 0, 0)
        self._first_epoch = 0
        self._epoch_seconds: list[float] = []
        self._rate_unit = "batch/s"

    def note(self, text: str) -> None:
        self.progress.note(text)

    def start(self, cfg: TrainConfig, n_params: int, start_epoch: int, cluster: str | None = None) -> None:
        """``cluster``: how the cluster shares each batch (``None``: one process)."""
        resumed = f", resuming after epoch {start_epoch}" if start_epoch else ""
        self._first_epoch = start_epoch
        batch = f"batch {cfg.batch_size}" if cluster is None else cluster
        # On a cluster a step is one global batch of the whole cluster: the rate says so.
        self._rate_unit = "batch/s" if cluster is None else "global batch/s, whole cluster"
        from edgefm.train.config import MODEL_DEFAULTS

        d = MODEL_DEFAULTS[cfg.model]
        sgd = "SGD" + (f" (Nesterov momentum {d.momentum:g})" if d.momentum else "")
        flips = ", left-right flips" if d.flip else ""
        self.note(
            f"training {cfg.model.value} ({n_params:,} parameters) for {plural(cfg.epochs, 'epoch')}, {batch}, "
            f"{sgd} lr {cfg.learning_rate:g}{flips}, seed {cfg.seed}, {'eager' if cfg.eager else 'graph'} mode{resumed}"
        )

    def epoch_start(self, epoch: int, epochs: int, batches: int) -> None:
        self._epoch = (epoch, epochs, batches)
        self.progress.start(f"epoch {epoch}/{epochs}", total=batches)

    def epoch_progress(self, done: int, loss: float, acc: float, seconds: float) -> None:
        rate = done / seconds if seconds > 0 else 0.0
        self.progress.advance(done, f"loss {loss:.4f} acc {100 * acc:5.2f}% {rate:,.0f} {self._rate_unit}")

    def epoch_end(self, s: EpochStats, batches: int) -> None:
        epoch, epochs, _ = self._epoch
        self.progress.finish()
        self._epoch_seconds.append(s.seconds)
        left = epochs - epoch
        mean = sum(self._epoch_seconds) / len(self._epoch_seconds)
        eta = f", {plural(left, 'epoch')} left, ETA {format_seconds(mean * left)}" if left > 0 else ""
        self.note(
            f"epoch {epoch}/{epochs}: loss {s.train_loss:.4f} acc {100 * s.train_accuracy:5.2f}% | "
            f"test loss {s.test_loss:.4f} acc {100 * s.test_accuracy:5.2f}% | {s.seconds:.2f} s "
            f"({batches / s.seconds:,.0f} {self._rate_unit}){eta}"
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
        for line in lines:
            self.note(line)
        self.note(
            f"SavedModel {saved.path}: test accuracy {100 * t['test_accuracy']:.2f}%, "
            f"test loss {t['test_loss']:.4f} (measured on the saved model)"
        )
