"""A zoo of real architectures, built and trained here (no download), each exported by edgefm, with planted faults.

The verdict of ``edgefm verify`` is only as good as the models it was tried on; this
module makes the models ``benchmarks.soundness`` judges. Each ``ZooModel`` is trained
briefly (seconds to a minute on 2 cores) until it is well above chance, saved as a
``.keras`` file, and brought with ``edgefm export --keras`` to every variant (the real
CLI in a subprocess, as a user runs it). Each planted fault is another ``.keras``
model (weight surgery, or serialisable layers around the good one: no ``Lambda``)
exported to one variant; ``benchmarks.soundness`` verifies that file against the
GOOD model's SavedModel (``verify --reference --model``), so a verdict that passes
it has missed the fault.

Models (inputs ``[N, ...]`` float32; every image is tinted, R = x, G = 0.6x, B = 0.3x,
so that the colour order matters):

- ``mobilenetv2``: ``keras.applications.MobileNetV2`` alpha 0.35, 32x32x3, Fashion-MNIST.
- ``efficientnetb0``: ``keras.applications.EfficientNetB0``, 32x32x3, Fashion-MNIST.
- ``resnet``: a residual CNN with batch norm, 28x28x1, Fashion-MNIST.
- ``text``: Embedding + GRU over 24 tokens; the class is the most frequent of tokens 1-4.
- ``conv1d``: two outputs over a 64-step signal: the waveform class and its frequency (``[N, 1]`` regression).
- ``detect``: boxes ``[N, 2, 4]`` (Reshape) and scores ``[N, 2]`` of two bright squares in a 28x28 image.

Faults (``FAULTS``; each where it applies): one channel of the first conv (or the first
dense layer) x1.05 and x0, the colour order swapped, the input range changed ([0, 1]
read as [-1, 1]), a regression head scaled x1.5 + 0.2, int8 with a zeroed channel,
another model's weights (the checkpoint of the first epoch instead of the last).

Everything lands under ``$XDG_CACHE_HOME/edgefm/zoo/KEY`` where KEY hashes this file,
edgefm's export code and the library versions, so a second run reuses it.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

#: training rows, verify rows, calibration rows, seed
TRAIN_ROWS, TEST_ROWS, CALIBRATION_ROWS, SEED = 6000, 1000, 256, 0
TINT = np.array([1.0, 0.6, 0.3], np.float32)


@dataclass(frozen=True)
class Dataset:
    """Training and verify arrays of one model: inputs by name, targets per output, the verify labels."""

    x_train: np.ndarray
    y_train: dict[str, np.ndarray] | np.ndarray
    x_test: np.ndarray
    y_test: dict[str, np.ndarray] | np.ndarray
    labels: np.ndarray | None  # class ids of the classification output (verify's --labels-data)


@dataclass(frozen=True)
class ZooModel:
    name: str
    build: Callable[[Any], Any]  # keras -> uncompiled model
    data: Callable[[Path | None], Dataset]
    loss: Any  # keras loss, or a list per output
    epochs: int = 3
    classes: int | None = None  # classification output's classes (exported with --labels)
    images: bool = False  # 3-channel image input: colour and range faults apply
    regression: int | None = None  # index of a regression output (scaled fault)
    chance: float = 0.0  # accuracy by chance (the model must beat it well)
    faults: tuple[str, ...] = field(default=())


# -- data -------------------------------------------------------------------------------------

def _fashion(data_dir: Path | None, size: int, channels: int) -> Dataset:
    from edgefm.data.fashion_mnist import load_split

    def images(split: Any, n: int) -> np.ndarray:
        x = split.images[:n].astype(np.float32) / 255.0
        pad = (size - 28) // 2
        x = np.pad(x, ((0, 0), (pad, pad), (pad, pad)))[..., None]
        return x * TINT[:channels] if channels == 3 else x

    train, test = load_split("train", data_dir), load_split("test", data_dir)
    ytr, yte = train.labels[:TRAIN_ROWS].astype(np.int64), test.labels[:TEST_ROWS].astype(np.int64)
    return Dataset(images(train, TRAIN_ROWS), ytr, images(test, TEST_ROWS), yte, yte)


def _tokens(_: Path | None) -> Dataset:
    rng = np.random.default_rng(SEED)
    n = TRAIN_ROWS + TEST_ROWS
    x = rng.integers(5, 50, size=(n, 24))
    counts = rng.multinomial(10, [0.25] * 4, size=n)  # how often tokens 1-4 appear
    for i in range(n):
        pos = rng.choice(24, size=10, replace=False)
        x[i, pos] = np.repeat(np.arange(1, 5), counts[i])
    y = np.argmax(counts + rng.random(counts.shape) * 0.1, axis=1)  # ties broken at random
    x = x.astype(np.float32)  # token ids as floats: every runtime and --data takes them
    return Dataset(x[:TRAIN_ROWS], y[:TRAIN_ROWS], x[TRAIN_ROWS:], y[TRAIN_ROWS:], y[TRAIN_ROWS:])


def _signals(_: Path | None) -> Dataset:
    rng = np.random.default_rng(SEED)
    n = TRAIN_ROWS + TEST_ROWS
    t = np.linspace(0, 1, 64, dtype=np.float32)
    kind = rng.integers(0, 3, n)
    freq = rng.uniform(1.0, 6.0, n).astype(np.float32)
    phase = rng.uniform(0, 2 * np.pi, n)
    arg = 2 * np.pi * freq[:, None] * t[None] + phase[:, None]
    waves = np.stack([np.sin(arg), np.sign(np.sin(arg)), 2 * ((arg / (2 * np.pi)) % 1.0) - 1])
    x = waves[kind, np.arange(n)] + rng.normal(0, 0.2, (n, 64))
    x = x[..., None].astype(np.float32)
    y = {"class": kind.astype(np.int64), "freq": (freq / 6.0)[:, None]}
    cut = lambda d, s: {k: v[s] for k, v in d.items()}  # noqa: E731
    return Dataset(x[:TRAIN_ROWS], cut(y, slice(0, TRAIN_ROWS)), x[TRAIN_ROWS:], cut(y, slice(TRAIN_ROWS, None)),
                   kind[TRAIN_ROWS:].astype(np.int64))


def _squares(_: Path | None) -> Dataset:
    rng = np.random.default_rng(SEED)
    n = TRAIN_ROWS + TEST_ROWS
    x = rng.normal(0, 0.05, (n, 28, 28, 1)).astype(np.float32)
    boxes = np.zeros((n, 2, 4), np.float32)
    scores = np.zeros((n, 2), np.float32)
    for i in range(n):
        for j in range(2):
            if rng.random() < 0.7:
                s = rng.integers(4, 9)
                r, c = rng.integers(0, 28 - s, 2)
                lo = 0 if j == 0 else 14  # square j lives in its half (left/right)
                c = lo + c % (14 - s)
                x[i, r:r + s, c:c + s, 0] += 1.0
                boxes[i, j] = np.array([r, c, r + s, c + s], np.float32) / 28.0
                scores[i, j] = 1.0
    y = {"boxes": boxes, "scores": scores}
    cut = lambda d, s: {k: v[s] for k, v in d.items()}  # noqa: E731
    return Dataset(x[:TRAIN_ROWS], cut(y, slice(0, TRAIN_ROWS)), x[TRAIN_ROWS:], cut(y, slice(TRAIN_ROWS, None)), None)


# -- architectures ----------------------------------------------------------------------------

def _bn_momentum(net: Any, keras: Any) -> Any:
    """Short fits: Keras's 0.99 leaves the moving statistics near their initial values (see any_model)."""
    for layer in net.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.9
    return net


def _mobilenet(keras: Any) -> Any:
    return _bn_momentum(keras.applications.MobileNetV2(input_shape=(32, 32, 3), alpha=0.35, weights=None, classes=10,
                                                       classifier_activation=None), keras)


def _efficientnet(keras: Any) -> Any:
    return _bn_momentum(keras.applications.EfficientNetB0(input_shape=(32, 32, 3), weights=None, classes=10,
                                                          classifier_activation=None), keras)


def _resnet(keras: Any) -> Any:
    L = keras.layers
    inp = keras.Input((28, 28, 1), name="image")
    x = L.Conv2D(16, 3, padding="same", use_bias=False)(inp)
    x = L.ReLU()(L.BatchNormalization(momentum=0.9)(x))
    for filters, stride in ((16, 1), (32, 2), (32, 1)):
        y = L.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False)(x)
        y = L.ReLU()(L.BatchNormalization(momentum=0.9)(y))
        y = L.BatchNormalization(momentum=0.9)(L.Conv2D(filters, 3, padding="same", use_bias=False)(y))
        short = x if stride == 1 and x.shape[-1] == filters else L.Conv2D(filters, 1, strides=stride)(x)
        x = L.ReLU()(L.Add()([short, y]))
    x = L.GlobalAveragePooling2D()(x)
    return keras.Model(inp, L.Dense(10)(x), name="resnet")


def _text(keras: Any) -> Any:
    L = keras.layers
    inp = keras.Input((24,), name="tokens")
    x = L.Embedding(50, 16)(inp)
    x = L.GRU(32, unroll=True)(x)  # unrolled: every converter sees plain ops, no while loop
    return keras.Model(inp, L.Dense(4)(x), name="text")


def _conv1d(keras: Any) -> Any:
    L = keras.layers
    inp = keras.Input((64, 1), name="signal")
    x = L.Conv1D(16, 5, padding="same", activation="relu")(inp)
    x = L.MaxPooling1D(2)(x)
    x = L.Conv1D(32, 5, padding="same", activation="relu")(x)
    x = L.GlobalAveragePooling1D()(x)
    x = L.Dense(32, activation="relu")(x)
    return keras.Model(inp, {"class": L.Dense(3, name="class")(x), "freq": L.Dense(1, name="freq")(x)}, name="conv1d")


def _detect(keras: Any) -> Any:
    L = keras.layers
    inp = keras.Input((28, 28, 1), name="image")
    x = L.Conv2D(16, 3, padding="same", activation="relu")(inp)
    x = L.MaxPooling2D(2)(x)
    x = L.Conv2D(32, 3, padding="same", activation="relu")(x)
    x = L.MaxPooling2D(2)(x)
    x = L.Flatten()(L.Conv2D(16, 1, activation="relu")(x))
    x = L.Dense(64, activation="relu")(x)
    boxes = L.Reshape((2, 4), name="boxes")(L.Dense(8, activation="sigmoid")(x))
    scores = L.Dense(2, activation="sigmoid", name="scores")(x)
    return keras.Model(inp, {"boxes": boxes, "scores": scores}, name="detect")


def _sparse(keras: Any) -> Any:
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


IMAGE_FAULTS = ("conv_x1.05", "conv_x0", "colour_swap", "input_range", "int8_zeroed_channel", "other_weights")
MODELS: dict[str, ZooModel] = {m.name: m for m in (
    ZooModel("mobilenetv2", _mobilenet, lambda d: _fashion(d, 32, 3), _sparse, epochs=3, classes=10, images=True,
             chance=0.1, faults=IMAGE_FAULTS),
    ZooModel("efficientnetb0", _efficientnet, lambda d: _fashion(d, 32, 3), _sparse, epochs=3, classes=10, images=True,
             chance=0.1, faults=IMAGE_FAULTS),
    ZooModel("resnet", _resnet, lambda d: _fashion(d, 28, 1), _sparse, epochs=2, classes=10, chance=0.1,
             faults=("conv_x1.05", "conv_x0", "input_range", "int8_zeroed_channel", "other_weights")),
    ZooModel("text", _text, _tokens, _sparse, epochs=6, classes=4, chance=0.25,
             faults=("conv_x1.05", "conv_x0", "other_weights")),
    ZooModel("conv1d", _conv1d, _signals, lambda k: {"class": _sparse(k), "freq": "mse"}, epochs=4, classes=3,
             regression=1, chance=1 / 3,
             faults=("conv_x1.05", "conv_x0", "regression_scaled", "regression_scaled_int8", "int8_zeroed_channel",
                     "other_weights")),
    ZooModel("detect", _detect, _squares, lambda k: {"boxes": "mse", "scores": "binary_crossentropy"}, epochs=4,
             regression=0,
             faults=("conv_x1.05", "conv_x0", "regression_scaled", "regression_scaled_int8", "int8_zeroed_channel",
                     "other_weights")),
)}
#: the variant each fault is planted in (edgefm's artifact name): a float fault in float32, an int8 one in int8
FAULT_VARIANT = {"int8_zeroed_channel": "tflite_int8", "regression_scaled_int8": "tflite_int8"}


# -- faults -------------------------------------------------------------------------------------

def _first_kernel_layer(net: Any, keras: Any) -> Any:
    """The first Conv (else Dense, else GRU) layer with a bias-free or biased kernel: where channel faults go."""
    for kinds in ((keras.layers.Conv1D, keras.layers.Conv2D), (keras.layers.Dense,)):
        for layer in _all_layers(net):
            if isinstance(layer, kinds) and not isinstance(layer, keras.layers.DepthwiseConv2D):
                return layer
    raise ValueError(f"{net.name}: no conv or dense layer to plant a fault in")


def _all_layers(net: Any) -> list[Any]:
    out = []
    for layer in net.layers:
        out += _all_layers(layer) if hasattr(layer, "layers") else [layer]
    return out


def _scale_channel(net: Any, keras: Any, factor: float) -> Any:
    layer = _first_kernel_layer(net, keras)
    weights = layer.get_weights()
    weights[0][..., 0] *= factor
    if len(weights) > 1:
        weights[1][0] *= factor
    layer.set_weights(weights)
    return net


def input_name(net: Any) -> str:
    """The name the exported SavedModel gives the input: its InputLayer's (``net.inputs[0].name`` is a tensor's)."""
    return str(net.layers[0].name)


def _wrapped(net: Any, keras: Any, before: Any = None, after: dict[int, Any] | None = None) -> Any:
    """``net`` with serialisable layers before its input or after some outputs; input name and output order kept."""
    inp = keras.Input(net.inputs[0].shape[1:], name=input_name(net))
    outs = net(before(inp) if before is not None else inp)
    if isinstance(outs, dict):
        keys = list(outs)
        outs = {k: (after[i](v) if after and i in after else v) for i, (k, v) in enumerate(outs.items())}
        assert list(outs) == keys
    elif after and 0 in after:
        outs = after[0](outs)
    return keras.Model(inp, outs)


def plant(fault: str, good: Path, early: Path, keras: Any) -> Any:
    """The faulty Keras model of ``fault`` made from the good model's file (or its first-epoch checkpoint)."""
    if fault == "other_weights":
        return keras.saving.load_model(early)
    net = keras.saving.load_model(good)
    L = keras.layers
    if fault == "conv_x1.05":
        return _scale_channel(net, keras, 1.05)
    if fault in ("conv_x0", "int8_zeroed_channel"):
        return _scale_channel(net, keras, 0.0)
    if fault == "colour_swap":  # a 1x1 convolution that reverses the channel order
        swap = L.Conv2D(3, 1, use_bias=False, trainable=False)
        model = _wrapped(net, keras, before=swap)
        swap.set_weights([np.eye(3, dtype=np.float32)[::-1].reshape(1, 1, 3, 3)])
        return model
    if fault == "input_range":  # the file reads [0, 1] inputs as if they were [-1, 1]
        return _wrapped(net, keras, before=L.Rescaling(2.0, offset=-1.0))
    if fault.startswith("regression_scaled"):
        spec = next(m for m in MODELS.values() if m.name == net.name)
        return _wrapped(net, keras, after={spec.regression: L.Rescaling(1.5, offset=0.2)})
    raise ValueError(f"unknown fault {fault!r}")


# -- building -----------------------------------------------------------------------------------

def cache_key() -> str:
    """The code of the models, data and faults, edgefm's export code and the library versions: a change to any
    of them builds the zoo again."""
    import importlib.metadata as md

    root = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    text = Path(__file__).read_text(encoding="utf-8")  # the models, their data and the faults; not this driver
    digest.update(text[text.index("# -- data"):text.index("# -- building")].encode())
    for p in sorted((root / "export").glob("*.py")):
        digest.update(p.read_bytes())
    for dist in ("tensorflow", "keras", "ai-edge-litert", "onnxruntime", "tf2onnx"):
        try:
            digest.update(f"{dist}={md.version(dist)}".encode())
        except md.PackageNotFoundError:
            pass
    return digest.hexdigest()[:16]


def zoo_dir() -> Path:
    from edgefm.core.fileio import user_cache_dir

    return user_cache_dir("zoo") / cache_key()


def cli(*args: str, python: str = sys.executable, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run([python, "-m", "edgefm.cli", *args], capture_output=True, text=True, stdin=subprocess.DEVNULL,
                          timeout=3600, env=env, cwd=cwd)


def _export(keras_file: Path, out: Path, calibration: Path, labels: Path | None, *quantize: str) -> dict[str, Any]:
    args = ["export", "--keras", str(keras_file), "--artifacts", str(out), "--data", str(calibration),
            "--calibration-samples", str(CALIBRATION_ROWS), "--keep-going", "--json", "--force"]
    if labels is not None:
        args += ["--labels", str(labels)]
    if quantize:
        args += ["--format", "tflite", "--quantize", quantize[0]]
    done = cli(*args)
    if done.returncode not in (0, 1) or not done.stdout.strip():
        raise RuntimeError(f"edgefm export {keras_file} exited {done.returncode}: {done.stderr.strip()[-800:]}")
    return json.loads(done.stdout)


def build(spec: ZooModel, *, data_dir: Path | None = None, faults: bool = True, log: Callable[[str], None] = print,
          ) -> Path:
    """Train, save and export one model (and its faults) under the zoo cache; return its directory.

    ``DIR/record.json`` says what was made: the test accuracy of TF, the input name,
    the good artifacts directory and, per fault, the faulty file.
    """
    import keras

    root = zoo_dir() / spec.name
    record_path = root / "record.json"
    record: dict[str, Any] = json.loads(record_path.read_text()) if record_path.exists() else {}
    if "accuracy" not in record and "score" not in record:
        root.mkdir(parents=True, exist_ok=True)
        data = spec.data(data_dir)
        keras.utils.set_random_seed(SEED)
        net = spec.build(keras)
        net.compile(optimizer=keras.optimizers.Adam(2e-3), loss=spec.loss(keras))
        net.fit(data.x_train, data.y_train, epochs=1, batch_size=64, verbose=0)
        net.save(root / "early.keras")
        if spec.epochs > 1:
            net.fit(data.x_train, data.y_train, epochs=spec.epochs - 1, batch_size=64, verbose=0)
        net.save(root / "model.keras")
        np.savez(root / "calibration.npz", **{input_name(net): data.x_train[:CALIBRATION_ROWS]})
        np.savez(root / "test.npz", **{input_name(net): data.x_test})
        out = net.predict(data.x_test, verbose=0)
        record = {"input": input_name(net), "rows": len(data.x_test)}
        if data.labels is not None:
            np.save(root / "labels.npy", data.labels)
            logits = out["class"] if isinstance(out, dict) else out
            record["accuracy"] = float(np.mean(np.argmax(logits, axis=1) == data.labels))
            record["chance"] = spec.chance
        else:
            y = data.y_test
            record["score"] = float(np.mean((out["scores"] > 0.5) == (y["scores"] > 0.5)))
            record["box_mae"] = float(np.mean(np.abs(out["boxes"] - y["boxes"])))
        if spec.classes:
            (root / "labels.txt").write_text("".join(f"class_{i}\n" for i in range(spec.classes)))
        record_path.write_text(json.dumps(record, indent=1))
        log(f"{spec.name}: trained, {json.dumps(record)}")
    labels = root / "labels.txt" if spec.classes else None
    if not (root / "artifacts" / "manifest.json").exists() or "exported" not in record:
        record["exported"] = _export(root / "model.keras", root / "artifacts", root / "calibration.npz", labels)
        record_path.write_text(json.dumps(record, indent=1))
        log(f"{spec.name}: exported {sorted(record['exported'].get('artifacts', record['exported']))[:8]}")
    if faults:
        record.setdefault("faults", {})
        for fault in spec.faults:
            if fault in record["faults"]:
                continue
            variant = FAULT_VARIANT.get(fault, "tflite_float32")
            quant = "int8" if variant.endswith("int8") else "none"
            keras_file = root / "faults" / f"{fault}.keras"
            keras_file.parent.mkdir(parents=True, exist_ok=True)
            plant(fault, root / "model.keras", root / "early.keras", keras).save(keras_file)
            out = root / "faults" / fault
            _export(keras_file, out, root / "calibration.npz", labels, quant)
            file = out / ("model_int8.tflite" if quant == "int8" else "model_float32.tflite")
            record["faults"][fault] = str(file) if file.exists() else None
            record_path.write_text(json.dumps(record, indent=1))
            log(f"{spec.name}: fault {fault} -> {file.name if file.exists() else 'did not export'}")
    return root


def main(argv: list[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("models", nargs="*", default=list(MODELS))
    p.add_argument("--data-dir", type=Path)
    p.add_argument("--no-faults", action="store_true")
    a = p.parse_args(argv)
    for name in a.models:
        build(MODELS[name], data_dir=a.data_dir, faults=not a.no_faults, log=lambda m: print(m, file=sys.stderr, flush=True))
    print(zoo_dir())
    return 0


if __name__ == "__main__":
    sys.exit(main())
