"""Per-epoch training time, side by side in one process: edgefm graph mode vs
edgefm ``--eager`` vs Keras ``model.fit`` on the same network, data and batch size.

Keras is fed NumPy arrays, its fastest input path measured on this stack. Prints a
Markdown table with the ratios, and JSON with ``--json``.

    python -m benchmarks.train_speed [--epochs 5] [--eager-epochs 2] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def edgefm_epochs(epochs: int, eager: bool, data_dir: Path | None) -> list[float]:
    from edgefm.config import TrainConfig
    from edgefm.train import train

    with tempfile.TemporaryDirectory() as tmp:
        cfg = TrainConfig(epochs=epochs, eager=eager, quiet=True, artifacts=Path(tmp), data_dir=data_dir)
        return [h.seconds for h in train(cfg).history]


def keras_fit_epochs(epochs: int, data_dir: Path | None) -> tuple[list[float], float]:
    """The same 784-20-10 network in Keras, SGD lr 0.1, batch 64, shuffled per epoch."""
    import keras
    import numpy as np

    from edgefm import data as ds

    train, test = ds.load_split("train", data_dir), ds.load_split("test", data_dir)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((28, 28)),
        keras.layers.Flatten(),
        keras.layers.Dense(20, activation="relu"),
        keras.layers.Dense(10),
    ])
    model.compile(optimizer=keras.optimizers.SGD(0.1),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    times: list[float] = []

    class Timer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            self.t0 = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            times.append(time.perf_counter() - self.t0)

    model.fit(train.scaled(), train.labels.astype(np.int32), batch_size=64, epochs=epochs, shuffle=True,
              verbose=0, callbacks=[Timer()])
    _, acc = model.evaluate(test.scaled(), test.labels.astype(np.int32), verbose=0)
    return times, float(acc)


def run(epochs: int = 5, eager_epochs: int = 2, data_dir: Path | None = None) -> dict[str, Any]:
    graph = edgefm_epochs(epochs, eager=False, data_dir=data_dir)
    eager = edgefm_epochs(eager_epochs, eager=True, data_dir=data_dir)
    keras_times, keras_acc = keras_fit_epochs(epochs, data_dir)
    med = {"edgefm graph": statistics.median(graph), "edgefm --eager": statistics.median(eager),
           "keras fit (numpy)": statistics.median(keras_times)}
    return {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "epochs": {"edgefm graph": graph, "edgefm --eager": eager, "keras fit (numpy)": keras_times},
        "median_epoch_seconds": med,
        "keras_test_accuracy": keras_acc,
        "speedup_vs_keras_fit": med["keras fit (numpy)"] / med["edgefm graph"],
        "speedup_vs_eager": med["edgefm --eager"] / med["edgefm graph"],
    }


def markdown(result: dict[str, Any]) -> str:
    med = result["median_epoch_seconds"]
    g = med["edgefm graph"]
    lines = ["| training (784-20-10 MLP, batch 64) | median s/epoch | edgefm graph is … faster |", "|---|---:|---:|"]
    for name, s in med.items():
        lines.append(f"| {name} | {s:.3f} | {'—' if name == 'edgefm graph' else f'{s / g:.1f}×'} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--eager-epochs", type=int, default=2)
    p.add_argument("--data-dir", type=Path, default=None)
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    result = run(a.epochs, a.eager_epochs, a.data_dir)
    print(json.dumps(result, indent=2) if a.json else markdown(result))


if __name__ == "__main__":
    main()
