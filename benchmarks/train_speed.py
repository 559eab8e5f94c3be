"""Per-epoch training time, side by side in one run: edgefm graph mode vs edgefm
``--eager`` vs Keras ``model.fit`` on the same network, data and batch size.

Each contender runs in its own child process with its own thread settings
(TensorFlow's thread pools are fixed per process). edgefm uses its model
defaults; Keras is fed NumPy arrays (its fastest input path on this stack) and is
measured both with TensorFlow's default threads and with one thread: the faster
is the baseline. Prints a Markdown table with the ratios, and JSON with ``--json``.

    python -m benchmarks.train_speed [--epochs 5] [--eager-epochs 2] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def edgefm_epochs(epochs: int, eager: bool, data_dir: Path | None) -> list[float]:
    from edgefm.train.config import TrainConfig
    from edgefm.train.trainer import train

    with tempfile.TemporaryDirectory() as tmp:
        cfg = TrainConfig(epochs=epochs, eager=eager, quiet=True, artifacts=Path(tmp), data_dir=data_dir)
        return [h.seconds for h in train(cfg).history]


def keras_fit_epochs(epochs: int, data_dir: Path | None) -> tuple[list[float], float]:
    """The same 784-20-10 network in Keras, SGD lr 0.1, batch 64, shuffled per epoch."""
    import keras
    import numpy as np

    from edgefm.data import fashion_mnist as ds

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


KERAS = "keras fit (numpy)"


def _child(kind: str, epochs: int, threads: int | None, data_dir: Path | None) -> dict[str, Any]:
    """Run one contender in a fresh process; returns its per-epoch seconds (and accuracy)."""
    cmd = [sys.executable, "-m", "benchmarks.train_speed", "--child", kind, "--epochs", str(epochs)]
    if threads:
        cmd += ["--threads", str(threads)]
    if data_dir:
        cmd += ["--data-dir", str(data_dir)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL)
    if out.returncode != 0:
        raise RuntimeError(f"{kind} benchmark child failed: {out.stderr.strip()[-500:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _run_child(kind: str, epochs: int, threads: int | None, data_dir: Path | None) -> dict[str, Any]:
    if kind == "keras":
        if threads:
            import tensorflow as tf

            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(threads)
        times, acc = keras_fit_epochs(epochs, data_dir)
        return {"epochs": times, "accuracy": acc}
    return {"epochs": edgefm_epochs(epochs, eager=(kind == "eager"), data_dir=data_dir)}


def run(epochs: int = 5, eager_epochs: int = 2, data_dir: Path | None = None) -> dict[str, Any]:
    graph = _child("graph", epochs, None, data_dir)["epochs"]
    eager = _child("eager", eager_epochs, None, data_dir)["epochs"]
    keras_default = _child("keras", epochs, None, data_dir)
    keras_one = _child("keras", epochs, 1, data_dir)
    variants = {f"{KERAS}, TF default threads": keras_default, f"{KERAS}, 1 thread": keras_one}
    best = min(variants.values(), key=lambda v: statistics.median(v["epochs"]))
    epochs_by_name = {"edgefm graph": graph, "edgefm --eager": eager, KERAS: best["epochs"]}
    epochs_by_name.update({k: v["epochs"] for k, v in variants.items()})
    med = {k: statistics.median(v) for k, v in epochs_by_name.items()}
    return {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "epochs": epochs_by_name,
        "median_epoch_seconds": med,
        "keras_test_accuracy": best["accuracy"],
        "speedup_vs_keras_fit": med[KERAS] / med["edgefm graph"],
        "speedup_vs_eager": med["edgefm --eager"] / med["edgefm graph"],
    }


def markdown(result: dict[str, Any]) -> str:
    med = result["median_epoch_seconds"]
    g = med["edgefm graph"]
    lines = ["| training (784-20-10 MLP, batch 64) | median s/epoch | edgefm graph is … faster |", "|---|---:|---:|"]
    for name, s in med.items():
        label = f"{name} (the faster of the two below: the baseline)" if name == KERAS else name
        lines.append(f"| {label} | {s:.3f} | {'—' if name == 'edgefm graph' else f'{s / g:.1f}×'} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--eager-epochs", type=int, default=2)
    p.add_argument("--data-dir", type=Path, default=None)
    p.add_argument("--json", action="store_true")
    p.add_argument("--child", choices=["graph", "eager", "keras"], help=argparse.SUPPRESS)
    p.add_argument("--threads", type=int, default=None, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child:
        print(json.dumps(_run_child(a.child, a.epochs, a.threads, a.data_dir)))
        return
    result = run(a.epochs, a.eager_epochs, a.data_dir)
    print(json.dumps(result, indent=2) if a.json else markdown(result))


if __name__ == "__main__":
    main()
