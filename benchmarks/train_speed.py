"""Training time, side by side in one run.

The MLP: edgefm graph mode vs edgefm ``--eager`` vs Keras ``model.fit`` on the same
network, data and batch size, per epoch. Each contender runs in its own child process with
its own thread settings (TensorFlow's thread pools are fixed per process). edgefm uses its
model defaults; Keras is fed NumPy arrays (its fastest input path on this stack) and is
measured both with TensorFlow's default threads and with one thread: the faster is the
baseline. Beside it, the MLP's achieved GFLOP/s and the machine's own throughput for the
same matmuls (same shapes, same count, in the same kind of loop, nothing else), each way
it can run here (XLA on 1 thread and on TF's default threads, NumPy's OpenBLAS): the distance
to the limit is a measured ratio.

The CNN: ``edgefm train --model cnn`` with its defaults, per seed (test accuracy,
parameters, training seconds), beside the baseline CNN (``BaselineCNN`` below: the
release-1 definition and defaults, kept here only) trained in the same run.

Prints Markdown tables with the ratios, and JSON with ``--json``.

    python -m benchmarks.train_speed [--epochs 5] [--eager-epochs 2] [--rounds 3] [--cnn-epochs N] [--cnn-seeds 0,1] [--json]
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


def mlp_flops_per_epoch(samples: int = 60_000, hidden: int = 20, inputs: int = 784, classes: int = 10) -> int:
    """FLOPs of one epoch of the MLP's SGD: per sample, the forward matmuls, both weight
    gradients and the hidden layer's input gradient (2 FLOPs per multiply-add); the input
    image's gradient is never computed (XLA drops it). Biases, ReLU and softmax are left out."""
    per_sample = 2 * (2 * inputs * hidden + 3 * hidden * classes)
    return samples * per_sample


MATMUL_STEPS = 60_000 // 64
#: distinct batches the matmul loop cycles through: 16 x 64 x 784 float32 (3.2 MB) stay in cache. A limit
#: measured over 937 distinct float32 batches (188 MB) streamed them from memory and took 1.2x as long for
#: the same matmuls (measured): partly a bandwidth figure, while a training step reads 50 KB of uint8.
MATMUL_BATCHES = 16


def matmul_seconds(kind: str, steps: int = MATMUL_STEPS, batch: int = 64, hidden: int = 20, reps: int = 7) -> float:
    """Median seconds of the MLP epoch's matmuls alone: ``steps`` SGD-shaped steps of the same five
    matmuls ([B,784]x[784,H], [B,H]x[H,10], their weight gradients and [B,10]x[10,H]), each step
    depending on the last (the weights move), nothing else. ``kind``: ``xla`` (TensorFlow, the
    loop compiled by XLA, this process's threads, w1 stored [784,H]), ``xla-t`` (the same with w1
    stored [H,784], as the model keeps it), ``xla-h`` (w1 [H,784] and the hidden layer [H,B], as the
    model's training step computes it: ``MLP.training_logits``) or ``numpy`` (OpenBLAS, its own threads)."""
    import numpy as np

    rng = np.random.default_rng(0)
    xs = rng.random((MATMUL_BATCHES, batch, 784), dtype=np.float32)
    w1 = rng.random((784, hidden), dtype=np.float32) * 0.01
    w2 = rng.random((hidden, 10), dtype=np.float32) * 0.01
    times: list[float] = []
    if kind == "numpy":
        def loop() -> None:
            a, b = w1.copy(), w2.copy()
            for i in range(steps):
                x = xs[i % MATMUL_BATCHES]
                h = x @ a
                z = h @ b
                dh = z @ b.T
                b -= 1e-9 * (h.T @ z)
                a -= 1e-9 * (x.T @ dh)
    else:
        import tensorflow as tf

        def step_784_h(x: tf.Tensor, a: tf.Tensor, b: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            h = tf.matmul(x, a)
            z = tf.matmul(h, b)
            dh = tf.matmul(z, b, transpose_b=True)
            return a - 1e-9 * tf.matmul(x, dh, transpose_a=True), b - 1e-9 * tf.matmul(h, z, transpose_a=True)

        def step_h_784(x: tf.Tensor, a: tf.Tensor, b: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            h = tf.matmul(x, a, transpose_b=True)
            z = tf.matmul(h, b)
            dh = tf.matmul(z, b, transpose_b=True)
            return a - 1e-9 * tf.matmul(dh, x, transpose_a=True), b - 1e-9 * tf.matmul(h, z, transpose_a=True)

        def step_hidden_major(x: tf.Tensor, a: tf.Tensor, b: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            h_t = tf.matmul(a, x, transpose_b=True)
            z = tf.matmul(h_t, b, transpose_a=True)
            dh_t = tf.matmul(b, z, transpose_b=True)
            return a - 1e-9 * tf.matmul(dh_t, x), b - 1e-9 * tf.matmul(h_t, z)

        step = {"xla": step_784_h, "xla-t": step_h_784, "xla-h": step_hidden_major}[kind]
        x_t, w1_t, w2_t = tf.constant(xs), tf.constant(w1 if kind == "xla" else w1.T.copy()), tf.constant(w2)

        @tf.function(jit_compile=True)
        def compiled(xb: tf.Tensor, a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
            for i in tf.range(steps):
                a, b = step(xb[i % MATMUL_BATCHES], a, b)
            return tf.reduce_sum(a) + tf.reduce_sum(b)

        def loop() -> None:
            float(compiled(x_t, w1_t, w2_t))

        loop()  # compile
    for _ in range(reps):
        t0 = time.perf_counter()
        loop()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


#: how the matmul limit is measured, each in its own child: (name, kind, TF threads)
MATMUL_WAYS: tuple[tuple[str, str, int | None], ...] = (
    ("XLA, 1 thread, w1 [H,784], hidden [H,B] (the model's training step)", "xla-h", 1),
    ("XLA, 1 thread, w1 [H,784]", "xla-t", 1),
    ("XLA, 1 thread, w1 [784,H]", "xla", 1),
    ("XLA, TF default threads, w1 [H,784], hidden [H,B]", "xla-h", None),
    ("NumPy (OpenBLAS), 1 thread", "numpy", 1),
    ("NumPy (OpenBLAS, its default threads)", "numpy", None),
)


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


class BaselineCNN:
    """The release-1 CNN and its defaults, kept here only so that every bench run trains it beside
    today's CNN: conv3x3(16)+ReLU+pool -> conv3x3(32)+ReLU+pool -> dense(32)+ReLU -> 10, plain SGD lr
    0.1 with a cosine decay, batch 64, 10 epochs, TensorFlow's default threads, no XLA."""

    EPOCHS, BATCH_SIZE, LEARNING_RATE, HIDDEN = 10, 64, 0.1, 32

    @staticmethod
    def build(seed: int) -> Any:
        import tensorflow as tf

        from edgefm.core.contract import NUM_CLASSES
        from edgefm.train.model import Classifier, glorot_uniform

        class CNN(Classifier):
            c1, c2 = 16, 32

            def __init__(self, hidden_units: int, seed: int) -> None:
                super().__init__(name="cnn")
                c1, c2 = self.c1, self.c2
                self.k1 = tf.Variable(glorot_uniform((3, 3, 1, c1), 9 * 1, 9 * c1, (seed, 1)), name="k1")
                self.c1b = tf.Variable(tf.zeros([c1]), name="c1b")
                self.k2 = tf.Variable(glorot_uniform((3, 3, c1, c2), 9 * c1, 9 * c2, (seed, 2)), name="k2")
                self.c2b = tf.Variable(tf.zeros([c2]), name="c2b")
                flat = 7 * 7 * c2
                self.w1 = tf.Variable(glorot_uniform((flat, hidden_units), flat, hidden_units, (seed, 3)), name="w1")
                self.b1 = tf.Variable(tf.zeros([hidden_units]), name="b1")
                self.w2 = tf.Variable(glorot_uniform((hidden_units, NUM_CLASSES), hidden_units, NUM_CLASSES, (seed, 4)),
                                      name="w2")
                self.b2 = tf.Variable(tf.zeros([NUM_CLASSES]), name="b2")

            def __call__(self, images: tf.Tensor) -> tf.Tensor:
                x = tf.reshape(images, [-1, 28, 28, 1])
                x = tf.nn.relu(tf.nn.conv2d(x, self.k1, strides=1, padding="SAME") + self.c1b)
                x = tf.nn.max_pool2d(x, 2, 2, "VALID")
                x = tf.nn.relu(tf.nn.conv2d(x, self.k2, strides=1, padding="SAME") + self.c2b)
                x = tf.nn.max_pool2d(x, 2, 2, "VALID")
                x = tf.reshape(x, [-1, 7 * 7 * self.c2])
                h = tf.nn.relu(tf.matmul(x, self.w1) + self.b1)
                return tf.matmul(h, self.w2) + self.b2

        return CNN(BaselineCNN.HIDDEN, seed)


def cnn_run(baseline: bool, seed: int, epochs: int | None, data_dir: Path | None) -> dict[str, Any]:
    """Train a CNN through ``edgefm.train.trainer.train``: today's with its defaults, or ``BaselineCNN``."""
    from edgefm.train import model as model_module
    from edgefm.train.config import TrainConfig
    from edgefm.train.trainer import train

    kw: dict[str, Any] = {}
    if baseline:
        import dataclasses

        from edgefm.train import config

        # The trainer builds its model by name and reads its optimizer from MODEL_DEFAULTS; this
        # child process swaps in the release-1 network and its plain SGD without augmentation.
        model_module.build_model = lambda kind, hidden_units, seed: BaselineCNN.build(seed)  # type: ignore[assignment]
        cnn = config.ModelKind.CNN
        config.MODEL_DEFAULTS[cnn] = dataclasses.replace(config.MODEL_DEFAULTS[cnn], momentum=0.0, flip=False)
        kw = dict(batch_size=BaselineCNN.BATCH_SIZE, learning_rate=BaselineCNN.LEARNING_RATE, lr_schedule="cosine",
                  hidden_units=BaselineCNN.HIDDEN, jit=False)
        epochs = epochs or BaselineCNN.EPOCHS
    with tempfile.TemporaryDirectory() as tmp:
        cfg = TrainConfig(model="cnn", epochs=epochs, seed=seed, quiet=True, artifacts=Path(tmp), data_dir=data_dir, **kw)
        t0 = time.perf_counter()
        result = train(cfg)
        wall = time.perf_counter() - t0
    t = result.manifest.training
    return {"seed": seed, "epochs": t["epochs"], "batch_size": t["batch_size"], "parameters": t["parameters"],
            "test_accuracy": t["test_accuracy"], "train_seconds": sum(t["epoch_seconds"]), "wall_seconds": wall}


def _child(kind: str, epochs: int, threads: int | None, data_dir: Path | None, seed: int = 0) -> dict[str, Any]:
    """Run one contender in a fresh process; returns what it measured (its JSON line)."""
    cmd = [sys.executable, "-m", "benchmarks.train_speed", "--child", kind, "--epochs", str(epochs), "--seed", str(seed)]
    if threads:
        cmd += ["--threads", str(threads)]
    if data_dir:
        cmd += ["--data-dir", str(data_dir)]
    env = {**os.environ, "OPENBLAS_NUM_THREADS": str(threads)} if threads else None  # NumPy's BLAS reads it at import
    out = subprocess.run(cmd, capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL, env=env)
    if out.returncode != 0:
        raise RuntimeError(f"{kind} benchmark child failed: {out.stderr.strip()[-500:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _run_child(kind: str, epochs: int, threads: int | None, data_dir: Path | None, seed: int = 0) -> dict[str, Any]:
    if threads and (kind == "keras" or kind.startswith("matmul-xla")):  # TensorFlow's pools; NumPy's read the env
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    if kind == "keras":
        times, acc = keras_fit_epochs(epochs, data_dir)
        return {"epochs": times, "accuracy": acc}
    if kind.startswith("matmul-"):
        return {"seconds": matmul_seconds(kind.removeprefix("matmul-"))}
    if kind in ("cnn", "cnn-baseline"):
        return cnn_run(kind == "cnn-baseline", seed, epochs or None, data_dir)
    return {"epochs": edgefm_epochs(epochs, eager=(kind == "eager"), data_dir=data_dir)}


def matmul_limit(data_dir: Path | None) -> dict[str, Any]:
    """The MLP epoch's matmuls alone, each way they run here; the fastest is the limit."""
    flops = mlp_flops_per_epoch()
    looped = mlp_flops_per_epoch(samples=MATMUL_STEPS * 64)  # the loop's full batches (the epoch's last 32 left out)
    ways = {name: _child(f"matmul-{kind}", 0, threads, data_dir)["seconds"] for name, kind, threads in MATMUL_WAYS}
    gflops = {name: looped / s / 1e9 for name, s in ways.items()}
    best = max(gflops, key=gflops.__getitem__)
    return {"flops_per_epoch": flops, "seconds": ways, "gflops": gflops, "best": best, "limit_gflops": gflops[best]}


def cnn_section(epochs: int | None, seeds: tuple[int, ...], data_dir: Path | None) -> dict[str, Any]:
    """Today's CNN per seed between two runs of the baseline CNN (seed ``seeds[0]``), each in its own child.

    The baseline runs before and after today's CNNs and the ratio takes the mean of its two runs, so
    that a change of load across the section falls on both sides alike (with one baseline run first,
    three full bench runs gave 1.31x, 1.39x and 1.47x). ``epochs``: ``None`` for each model's own
    default (the targets' setting); a number trains both that many epochs (``--quick``)."""
    n = epochs or 0
    first = _child("cnn-baseline", n, None, data_dir, seed=seeds[0])
    runs = [_child("cnn", n, None, data_dir, seed=s) for s in seeds]
    baselines = [first, _child("cnn-baseline", n, None, data_dir, seed=seeds[0])]
    mean_seconds = statistics.mean(r["train_seconds"] for r in runs)
    baseline_seconds = statistics.mean(b["train_seconds"] for b in baselines)
    return {
        "runs": runs,
        "baselines": baselines,
        "min_test_accuracy": min(r["test_accuracy"] for r in runs),
        "parameters": max(r["parameters"] for r in runs),
        "mean_train_seconds": mean_seconds,
        "baseline_train_seconds": baseline_seconds,
        "time_vs_baseline": mean_seconds / baseline_seconds,
    }


def run(epochs: int = 5, eager_epochs: int = 2, data_dir: Path | None = None, *, cnn_epochs: int | None = None,
        cnn_seeds: tuple[int, ...] = (0, 1), cnn: bool = True, rounds: int = 1) -> dict[str, Any]:
    """``rounds``: the MLP contenders (edgefm graph and both Keras settings) run that many times, interleaved,
    and each one's epochs are pooled, so that a change of the machine's load during the minutes of the run
    falls on all of them alike (on this shared machine one round gave edgefm/Keras 11.3x, 11.9x and 12.1x in
    three bench runs; a child's first, traced epoch is in each round, and the median passes over it)."""
    graph: list[float] = []
    keras_default: dict[str, Any] = {"epochs": []}
    keras_one: dict[str, Any] = {"epochs": []}
    for _ in range(rounds):
        graph += _child("graph", epochs, None, data_dir)["epochs"]
        for pooled, threads in ((keras_default, None), (keras_one, 1)):
            got = _child("keras", epochs, threads, data_dir)
            pooled["epochs"] += got["epochs"]
            pooled["accuracy"] = got["accuracy"]  # the last round's (same seed and data each round)
    eager = _child("eager", eager_epochs, None, data_dir)["epochs"]
    variants = {f"{KERAS}, TF default threads": keras_default, f"{KERAS}, 1 thread": keras_one}
    best = min(variants.values(), key=lambda v: statistics.median(v["epochs"]))
    epochs_by_name = {"edgefm graph": graph, "edgefm --eager": eager, KERAS: best["epochs"]}
    epochs_by_name.update({k: v["epochs"] for k, v in variants.items()})
    med = {k: statistics.median(v) for k, v in epochs_by_name.items()}
    limit = matmul_limit(data_dir)
    achieved = limit["flops_per_epoch"] / med["edgefm graph"] / 1e9
    return {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "epochs": epochs_by_name,
        "median_epoch_seconds": med,
        "keras_test_accuracy": best["accuracy"],
        "speedup_vs_keras_fit": med[KERAS] / med["edgefm graph"],
        "speedup_vs_eager": med["edgefm --eager"] / med["edgefm graph"],
        "matmul": {**limit, "achieved_gflops": achieved, "achieved_vs_limit": achieved / limit["limit_gflops"]},
        "cnn": cnn_section(cnn_epochs, cnn_seeds, data_dir) if cnn else None,
    }


def markdown(result: dict[str, Any]) -> str:
    med = result["median_epoch_seconds"]
    g = med["edgefm graph"]
    lines = ["| training (784-20-10 MLP, batch 64) | median s/epoch | edgefm graph is … faster |", "|---|---:|---:|"]
    for name, s in med.items():
        label = f"{name} (the faster of the two below: the baseline)" if name == KERAS else name
        lines.append(f"| {label} | {s:.3f} | {'—' if name == 'edgefm graph' else f'{s / g:.1f}×'} |")
    mm = result["matmul"]
    lines += ["", f"| the MLP epoch's {mm['flops_per_epoch'] / 1e9:.2f} GFLOP of matmuls | seconds | GFLOP/s |",
              "|---|---:|---:|",
              f"| edgefm graph (the whole training epoch) | {g:.3f} | {mm['achieved_gflops']:.1f} |"]
    for name, s in mm["seconds"].items():
        mark = " (the fastest: the limit)" if name == mm["best"] else ""
        lines.append(f"| the same matmuls alone, {name}{mark} | {s:.3f} | {mm['gflops'][name]:.1f} |")
    lines += ["", f"- edgefm's MLP epoch runs at **{mm['achieved_gflops']:.1f} GFLOP/s**, {100 * mm['achieved_vs_limit']:.0f}% "
              f"of the {mm['limit_gflops']:.1f} GFLOP/s this machine gives the same matmuls alone ({mm['best']})."]
    if result.get("cnn"):
        lines += ["", cnn_markdown(result["cnn"])]
    return "\n".join(lines)


def cnn_markdown(c: dict[str, Any]) -> str:
    lines = ["| CNN | seed | epochs | batch | parameters | test accuracy | training s |", "|---|---:|---:|---:|---:|---:|---:|"]
    rows = ([("baseline (release 1), before", c["baselines"][0])] + [("edgefm cnn (today)", r) for r in c["runs"]]
            + [("baseline (release 1), after", c["baselines"][1])])
    for name, r in rows:
        lines.append(f"| {name} | {r['seed']} | {r['epochs']} | {r['batch_size']} | {r['parameters']:,} | "
                     f"{100 * r['test_accuracy']:.2f}% | {r['train_seconds']:.1f} |")
    return "\n".join(lines) + (
        f"\n\n- Today's CNN: lowest test accuracy over {len(c['runs'])} seeds {100 * c['min_test_accuracy']:.2f}%, "
        f"{c['parameters']:,} parameters, {c['time_vs_baseline']:.2f}× the baseline's training seconds (means over the seeds and over "
        f"the baseline's runs before and after them).")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--eager-epochs", type=int, default=2)
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds of the MLP contenders")
    p.add_argument("--data-dir", type=Path, default=None)
    p.add_argument("--cnn-epochs", type=int, default=None, help="CNN epochs (default: each CNN's own)")
    p.add_argument("--cnn-seeds", default="0,1", help="seeds of today's CNN (default: %(default)s)")
    p.add_argument("--json", action="store_true")
    matmul_kinds = [f"matmul-{kind}" for kind in dict.fromkeys(kind for _, kind, _ in MATMUL_WAYS)]
    p.add_argument("--child", choices=["graph", "eager", "keras", *matmul_kinds, "cnn", "cnn-baseline"],
                   help=argparse.SUPPRESS)
    p.add_argument("--threads", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child:
        print(json.dumps(_run_child(a.child, a.epochs, a.threads, a.data_dir, a.seed)))
        return
    seeds = tuple(int(s) for s in a.cnn_seeds.split(","))
    result = run(a.epochs, a.eager_epochs, a.data_dir, cnn_epochs=a.cnn_epochs, cnn_seeds=seeds, rounds=a.rounds)
    print(json.dumps(result, indent=2) if a.json else markdown(result))


if __name__ == "__main__":
    main()
