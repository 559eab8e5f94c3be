"""A real architecture beside the Fashion-MNIST networks: export and verify seconds, sizes, parity per variant.

``keras.applications.MobileNetV2`` (alpha 0.35, ``weights=None``: built here, no
download) at two input sizes, 32x32 and 64x64 RGB, trained briefly on Fashion-MNIST
(padded to 32x32, repeated to three channels; 64x64 by pixel doubling) so its
outputs mean something, then brought with ``export --keras`` and exported to every
variant (int8 calibrated on 256 training images) and verified on test images with
their labels, each by the real CLI in a subprocess (as a user runs them; the
benchmarks never import ``export`` and ``runtime_check`` together). Users see how
export and verify cost grows with the input size and what each variant keeps.

BatchNormalization momentum is lowered to 0.9 for the short fit: with Keras's 0.99
its moving statistics would still be near their initial values after 64 steps and
the network would be degenerate in inference mode (its logits ~1e-11 at init).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ARCHITECTURE = "keras.applications.MobileNetV2(alpha=0.35, weights=None, classes=10)"


def _images(split: Any, size: int) -> np.ndarray:
    x = np.pad(split.images, ((0, 0), (2, 2), (2, 2)))
    if size == 64:
        x = x.repeat(2, axis=1).repeat(2, axis=2)
    return np.repeat(x[..., None], 3, axis=-1).astype(np.float32) / 255.0


def measure_size(size: int, *, train_images: int, test_images: int, epochs: int, data_dir: Path | None) -> dict[str, Any]:
    import json
    import subprocess
    import sys

    import keras

    from edgefm.data.fashion_mnist import load_split

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "edgefm.cli", *args], capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, timeout=1800)

    train, test = load_split("train", data_dir), load_split("test", data_dir)
    xtr, ytr = _images(train, size)[:train_images], train.labels[:train_images]
    xte, yte = _images(test, size)[:test_images], test.labels[:test_images].astype(np.int64)
    keras.utils.set_random_seed(0)
    net = keras.applications.MobileNetV2(input_shape=(size, size, 3), alpha=0.35, weights=None, classes=10,
                                         classifier_activation=None)
    for layer in net.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.9
    net.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    t0 = time.perf_counter()
    net.fit(xtr, ytr, epochs=epochs, batch_size=128, verbose=0)
    fit_s = time.perf_counter() - t0
    with tempfile.TemporaryDirectory(prefix="edgefm-bench-any-") as tmp:
        root = Path(tmp)
        name = net.layers[0].name
        net.save(root / "model.keras")
        np.savez(root / "calibration.npz", **{name: xtr[:256]})
        np.savez(root / "test.npz", **{name: xte})
        np.save(root / "labels.npy", yte)
        art = root / "artifacts"
        t0 = time.perf_counter()
        exported = cli("export", "--keras", str(root / "model.keras"), "--artifacts", str(art), "--data",
                       str(root / "calibration.npz"), "--calibration-samples", "256", "--keep-going", "--json")
        export_s = time.perf_counter() - t0
        if exported.returncode not in (0, 1) or not exported.stdout.strip():
            raise RuntimeError(f"edgefm export exited {exported.returncode}: {exported.stderr.strip()[-500:]}")
        failed_to_convert = json.loads(exported.stdout).get("failed", {})
        t0 = time.perf_counter()
        verified = cli("verify", "--artifacts", str(art), "--data", str(root / "test.npz"), "--labels-data",
                       str(root / "labels.npy"), "--no-html", "--json")
        verify_s = time.perf_counter() - t0
        if verified.returncode not in (0, 1) or not verified.stdout.strip():
            raise RuntimeError(f"edgefm verify exited {verified.returncode}: {verified.stderr.strip()[-500:]}")
        report = json.loads(verified.stdout)
    rows = []
    for name, a in report["artifacts"].items():
        metrics = a["metrics"]
        rows.append({
            "name": name, "bytes": a.get("bytes"), "passed": a["passed"], "error": a.get("error"),
            **{k: (metrics[k]["value"] if k in metrics else None)
               for k in ("top1_agreement", "cosine", "max_rel_error", "snr_db", "accuracy", "accuracy_drop")},
            "failed": [k for k, m in metrics.items() if not m["passed"]],
        })
    return {
        "size": size, "parameters": int(net.count_params()), "fit_seconds": fit_s, "export_seconds": export_s,
        "verify_seconds": verify_s, "reference_accuracy": report["reference"].get("accuracy"),
        "inputs": test_images, "failed_to_convert": failed_to_convert, "rows": rows,
    }


def any_model_section(*, quick: bool, data_dir: Path | None) -> dict[str, Any]:
    sizes = (32,) if quick else (32, 64)
    kw = {"train_images": 512, "test_images": 256, "epochs": 1} if quick else \
         {"train_images": 4096, "test_images": 2000, "epochs": 3}
    return {"architecture": ARCHITECTURE, "sizes": [measure_size(s, data_dir=data_dir, **kw) for s in sizes], **kw}


def markdown(section: dict[str, Any]) -> str:
    from runtime_check.verify.results import format_value

    lines = [f"{section['architecture']}, trained {section['epochs']} epoch(s) on {section['train_images']} "
             f"Fashion-MNIST images; verified on {section['test_images']} test images with their labels.", ""]
    lines += ["| input | parameters | fit s | export s (every variant) | verify s | TF accuracy |",
              "|---|---|---|---|---|---|"]
    for s in section["sizes"]:
        lines.append(f"| {s['size']}x{s['size']}x3 | {s['parameters']:,} | {s['fit_seconds']:.1f} | "
                     f"{s['export_seconds']:.1f} | {s['verify_seconds']:.1f} | "
                     f"{format_value('accuracy', s['reference_accuracy'])} |")
    for s in section["sizes"]:
        lines += ["", f"{s['size']}x{s['size']}: parity per variant", "",
                  "| variant | size KiB | top-1 agr. | cosine | max rel. err | SNR | accuracy | result |",
                  "|---|---|---|---|---|---|---|---|"]
        for r in s["rows"]:
            kib = "-" if r["bytes"] is None else f"{r['bytes'] / 1024:.1f}"
            result = "PASS" if r["passed"] else ("did not run" if r["error"] else "FAIL: " + ", ".join(r["failed"]))
            lines.append(f"| {r['name']} | {kib} | {format_value('top1_agreement', r['top1_agreement'])} | "
                         f"{format_value('cosine', r['cosine'])} | {format_value('max_rel_error', r['max_rel_error'])} | "
                         f"{format_value('snr_db', r['snr_db'])} | {format_value('accuracy', r['accuracy'])} | {result} |")
        if s["failed_to_convert"]:
            lines.append("")
            lines += [f"- {n} did not convert: {m}" for n, m in s["failed_to_convert"].items()]
    return "\n".join(lines)
