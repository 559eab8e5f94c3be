"""What ``edgefm verify`` does: ``CheckConfig``, validated where it is made."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgefm.core.contract import DEFAULT_ARTIFACTS
from edgefm.core.errors import ConfigError
from edgefm.core.options import positive_float, positive_int
from edgefm.data.fashion_mnist import SPLITS
from runtime_check.device.targets import DeviceOptions
from runtime_check.verify.tolerances import check_bound


@dataclass(frozen=True)
class CheckConfig:
    """What ``edgefm verify`` does."""

    artifacts: Path = DEFAULT_ARTIFACTS
    #: the Fashion-MNIST split to verify on: "test" (held out, the default) or "train" (60,000 images)
    split: str = "test"
    samples: int | None = None  # None: the whole split
    batch_size: int = 1000
    invariance_samples: int = 64
    only: tuple[str, ...] = ()
    atol: dict[str, float] = field(default_factory=dict)
    min_top1: dict[str, float] = field(default_factory=dict)
    #: artifact name -> metric -> bound (``--bound NAME.METRIC=VALUE``); None makes the metric informational
    bounds: dict[str, dict[str, float | None]] = field(default_factory=dict)
    report: Path | None = None
    html: Path | None = None
    native: bool = False
    #: ``--micro``: rows NAME@tflm (TFLite Micro on the host) for the .tflite variants TFLM runs
    micro: bool = False
    #: ``--npu CONFIG``: Arm Vela's Ethos-U fit report of each int8 .tflite (checked against Vela's list when run)
    npu: str | None = None
    data_dir: Path | None = None
    verify_data: bool = True
    #: run TensorFlow for the reference even when the cache beside the manifest matches
    recompute_reference: bool = False
    #: inputs for any model: .npz, .npy, a directory of images or "synthetic" (``edgefm.data.sources``);
    #: None: the Fashion-MNIST split for edgefm's own model, synthetic for any other
    data: str | None = None
    #: one integer label per row of ``data`` (``--labels-data FILE.npy``): accuracy for classification outputs
    labels_data: Path | None = None
    #: ``--value-range NAME=LO,HI`` for synthetic inputs, and their seed
    value_ranges: dict[str, tuple[float, float]] = field(default_factory=dict)
    seed: int = 0
    #: write TensorFlow's outputs to this .npz (``--save-outputs``), or judge against such a file without
    #: running TensorFlow (``--load-outputs``: what a run on another machine needs)
    save_outputs: Path | None = None
    load_outputs: Path | None = None
    #: one-shot comparison without a manifest: the reference SavedModel and the model files to check
    reference: Path | None = None
    models: tuple[Path, ...] = ()
    #: ``--device``: boards the artifacts also run on (``runtime_check.device.targets``; strings are parsed)
    devices: tuple[Any, ...] = ()
    #: ``--device-any-cpu``, ``--known-hosts``, ``--ssh-identity``, ``--cross``
    device_options: DeviceOptions = field(default_factory=DeviceOptions)
    #: ``--runtime PKG==VERSION``: released runtime versions the artifacts also run in (rows NAME@PKG-VERSION;
    #: ``runtime_check.versions``; strings are parsed)
    runtimes: tuple[Any, ...] = ()
    #: the confidence of the intervals verify judges rates by (``--confidence``; runtime_check.verify.statistics)
    confidence: float = 0.95

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "artifacts", Path(self.artifacts))
        if self.split not in SPLITS:
            raise ConfigError(f"--split {self.split!r}: use one of {', '.join(SPLITS)} (the Fashion-MNIST splits).")
        if self.samples is not None:
            positive_int(self.samples, "--samples")
        positive_int(self.batch_size, "--batch-size")
        positive_int(self.invariance_samples, "invariance_samples")
        set_(self, "atol", {name: positive_float(v, f"--atol {name}") for name, v in self.atol.items()})
        set_(self, "min_top1", {name: positive_float(v, f"--min-top1 {name}") for name, v in self.min_top1.items()})
        for name, f in self.min_top1.items():
            if f > 1:
                raise ConfigError(f"--min-top1 {name}={f}: a fraction between 0 and 1 is expected (e.g. 0.99).")
        for name, per_metric in self.bounds.items():
            for metric, v in per_metric.items():
                check_bound(name, metric, v)
        if not (isinstance(self.confidence, (int, float)) and 0 < self.confidence < 1):
            raise ConfigError(f"--confidence {self.confidence}: a confidence level is a number strictly between 0 "
                              "and 1 (e.g. 0.95 for 95% intervals on top-1 agreement and the accuracy change).")
        set_(self, "only", tuple(self.only))
        if self.save_outputs is not None and self.load_outputs is not None:
            raise ConfigError("--save-outputs and --load-outputs exclude each other: save once, load later.")
        if bool(self.reference) != bool(self.models):
            raise ConfigError("A one-shot comparison needs both --reference DIR (the SavedModel) and --model FILE "
                              "(repeatable) for the files to check.")
        set_(self, "models", tuple(Path(m) for m in self.models))
        set_(self, "devices", tuple(self.device_options.parse(d) if isinstance(d, str) else d for d in self.devices))
        if self.runtimes:
            from runtime_check.versions.spec import parse_runtime_spec

            set_(self, "runtimes", tuple(dict.fromkeys(parse_runtime_spec(r) if isinstance(r, str) else r
                                                       for r in self.runtimes)))
        for attr in ("report", "html", "data_dir", "labels_data", "save_outputs", "load_outputs", "reference"):
            v = getattr(self, attr)
            if v is not None:
                set_(self, attr, Path(v))

