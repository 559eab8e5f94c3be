"""One runtime interface for every way edgefm runs a model.

Shaped like Polygraphy's runners: the public ``activate / infer / deactivate``
live in the base class, which checks input names, dtypes and shapes once for
every backend; subclasses implement only the ``_impl`` hooks. Inputs and outputs
are *logical*: float32 images in, float32 logits/probabilities out, whatever the
file stores inside (int8 I/O is quantized and dequantized here from the tensor's
own scale and zero-point).

Heavy libraries are imported inside ``_activate_impl``.
"""

from __future__ import annotations

import abc
import time
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from edgefm.core.errors import EdgefmError, ModelFileError, RuntimeUnavailableError, UsageError
from edgefm.core.manifest import TensorSpec


class Runtime(abc.ABC):
    """Load a model, describe its I/O, run it on named NumPy inputs."""

    #: short name used in reports and ``--runtime`` options
    name: ClassVar[str] = "runtime"
    #: the artifact format this runtime executes
    format: ClassVar[str] = ""
    #: the command that writes this runtime's files (named in "does not exist" messages)
    made_by: ClassVar[str] = "edgefm export"
    #: check the file (structure, then a load in a child process) before the runtime's C++ code sees it:
    #: LiteRT and ONNX Runtime abort or segfault on some malformed files instead of raising
    probe_before_load: ClassVar[bool] = False

    def __init__(self, path: Path, *, threads: int | None = None) -> None:
        self.path = Path(path)
        self.threads = threads
        self.active = False
        #: seconds the last ``activate`` took to load the model (the probe before it excluded)
        self.load_seconds: float | None = None
        #: wall seconds of the last ``infer`` call (the runtime call only: feeds checked before)
        self.last_inference_seconds: float | None = None
        #: seconds the engine itself reported for the last call (``_engine_seconds``); None if it reports none
        self.last_engine_seconds: float | None = None
        self._input_specs: list[TensorSpec] = []
        self._output_specs: list[TensorSpec] = []
        #: the reference's I/O this runtime's tensors are matched to (``expecting``), and the match made
        self._expected: tuple[list[TensorSpec], list[TensorSpec]] | None = None
        self._alias_in: dict[str, str] = {}  # reference name -> the file's name
        self._alias_out: dict[str, str] = {}  # the file's name -> reference name
        #: how the file's tensors were matched to the reference's ("" when every name matched): said in reports
        self.io_match = ""

    # -- public API ---------------------------------------------------------------
    def activate(self) -> Runtime:
        if self.active:
            return self
        if not self.path.exists():
            raise ModelFileError(f"Model {self.path} does not exist. Check the path, or run `{self.made_by}`.")
        if self.probe_before_load:
            from runtime_check.runtimes.probe import validate_model_file

            validate_model_file(self.path)
        t0 = time.perf_counter()
        self._activate_impl()
        self.load_seconds = time.perf_counter() - t0
        self._input_specs, self._output_specs = self._io_specs_impl()
        if self._expected is not None:
            self._match_expected()
        self.active = True
        return self

    def expecting(self, inputs: list[TensorSpec], outputs: list[TensorSpec]) -> Runtime:
        """Address this file's tensors by the reference's names once loaded (``match_tensors``); returns self.

        A file without names of its own (a ``.tflite`` without a SignatureDef names its
        tensors ``serving_default_x:0``, ``Identity``, ``Identity_1``...) is fed and read
        under the reference's names; ``io_match`` says how each was paired.
        """
        self._expected = (list(inputs), list(outputs))
        return self

    def _match_expected(self) -> None:
        assert self._expected is not None
        notes = []
        for side, own, ref in (("inputs", self._input_specs, self._expected[0]),
                               ("outputs", self._output_specs, self._expected[1])):
            pairs, how = match_tensors(own, ref)
            if how:
                notes.append(f"{side} {how}: " + ", ".join(f"{o} -> {r}" for o, r in pairs.items() if o != r))
            renamed = [replace(s, name=pairs.get(s.name, s.name)) for s in own]
            if side == "inputs":
                self._alias_in = {r: o for o, r in pairs.items()}
                self._input_specs = renamed
            else:
                self._alias_out = dict(pairs)
                self._output_specs = renamed
        self.io_match = "; ".join(notes)

    def deactivate(self) -> None:
        if self.active:
            self._deactivate_impl()
            self.active = False

    def __enter__(self) -> Runtime:
        return self.activate()

    def __exit__(self, *exc: object) -> None:
        self.deactivate()

    @property
    def input_specs(self) -> list[TensorSpec]:
        self._require_active()
        return self._input_specs

    @property
    def output_specs(self) -> list[TensorSpec]:
        self._require_active()
        return self._output_specs

    def infer(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run on named inputs; returns named float32 outputs. Inputs checked here, once."""
        self._require_active()
        checked = self._own_feeds(self._check_feeds(feeds))
        t0 = time.perf_counter()
        try:
            outputs = self._infer_impl(checked)
        except EdgefmError:
            raise
        except MemoryError as e:
            rows = next(iter(checked.values())).shape[0] if checked else 0
            raise ModelFileError(
                f"{self.name} ran out of memory running {self.path} on a batch of {rows}: the model allocates "
                "more than this machine has. Try a smaller --batch-size."
            ) from e
        except Exception as e:  # the runtime's own error types: the model, not edgefm, failed
            detail = runtime_message(e)
            raise ModelFileError(
                f"{self.name} failed while running {self.path}: {type(e).__name__}: {detail}. The model loads but "
                "cannot run on these inputs (for example a batch size or shape fixed inside the graph)."
            ) from e
        self.last_inference_seconds = time.perf_counter() - t0
        self.last_engine_seconds = self._engine_seconds()
        return self._named_outputs(outputs)

    def infer_batched(self, feeds: Mapping[str, np.ndarray], batch_size: int) -> dict[str, np.ndarray]:
        """``infer`` over the leading dimension in chunks of ``batch_size``, concatenated."""
        n = next(iter(feeds.values())).shape[0]
        if n == 0:
            raise UsageError(f"{self.path}: no inputs to run (0 rows).")
        parts: list[dict[str, np.ndarray]] = []
        for start in range(0, n, batch_size):
            parts.append(self.infer({k: v[start : start + batch_size] for k, v in feeds.items()}))
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

    def versions(self) -> dict[str, str]:
        return {}

    # -- hooks -------------------------------------------------------------------
    @abc.abstractmethod
    def _activate_impl(self) -> None: ...

    @abc.abstractmethod
    def _io_specs_impl(self) -> tuple[list[TensorSpec], list[TensorSpec]]: ...

    @abc.abstractmethod
    def _infer_impl(self, feeds: dict[str, np.ndarray]) -> Mapping[str, np.ndarray]: ...

    def _deactivate_impl(self) -> None:
        return None

    def _engine_seconds(self) -> float | None:
        """What the engine measured of the last call itself (no Python, no process start); None by default."""
        return None

    def _own_feeds(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Checked feeds under the file's own input names (``expecting``): what the ``_impl`` hooks take."""
        return {self._alias_in.get(k, k): v for k, v in feeds.items()}

    def _named_outputs(self, outputs: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """The ``_impl`` hooks' outputs under the names callers asked for (``expecting``)."""
        return {self._alias_out.get(k, k): np.asarray(v) for k, v in outputs.items()}

    # -- checks ------------------------------------------------------------------
    def _require_active(self) -> None:
        if not self.active:
            raise UsageError(f"{type(self).__name__} for {self.path} is not active; call activate() first.")

    def _check_feeds(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        expected = {s.name: s for s in self._input_specs}
        if set(feeds) != set(expected):
            raise UsageError(
                f"{self.path}: inputs {sorted(feeds)} given, the model takes {sorted(expected)}."
            )
        out = {}
        for name, spec in expected.items():
            arr = np.asarray(feeds[name])
            if arr.dtype != np.dtype(spec.dtype):
                raise UsageError(f"{self.path}: input {name!r} is {arr.dtype}, the model takes {spec.dtype}.")
            if arr.ndim != len(spec.shape) or any(
                want is not None and want != got for want, got in zip(spec.shape, arr.shape)
            ):
                raise UsageError(
                    f"{self.path}: input {name!r} has shape {list(arr.shape)}, the model takes "
                    f"{['N' if d is None else d for d in spec.shape]}."
                )
            out[name] = np.ascontiguousarray(arr)
        return out


def match_tensors(own: list[TensorSpec], ref: list[TensorSpec]) -> tuple[dict[str, str], str]:
    """Pair a file's tensors with the reference's: by name, else by position and shape.

    Returns ``{own name: reference name}`` and how the pairing was made ("" when every
    name matched, "matched by position and shape" otherwise). A tensor of the file that
    fits none keeps its own name (the caller's name checks then say what differs).
    """
    ref_names = {r.name for r in ref}
    if {o.name for o in own} == ref_names:
        return {o.name: o.name for o in own}, ""
    pairs = {o.name: o.name for o in own if o.name in ref_names}
    free = [r for r in ref if r.name not in pairs.values()]
    for o in own:
        if o.name in pairs:
            continue
        fit = next((r for r in free if _shapes_fit(o.shape, r.shape)), None)  # the first in order whose shape fits
        if fit is not None:
            pairs[o.name] = fit.name
            free.remove(fit)
    return pairs, "matched by position and shape (the file names them differently)"


def _shapes_fit(a: list[int | None], b: list[int | None]) -> bool:
    return len(a) == len(b) and all(x is None or y is None or x == y for x, y in zip(a, b))


def runtime_message(e: BaseException, limit: int = 500) -> str:
    """The line of a runtime's exception a user can act on.

    TensorFlow's graph errors start with "Graph execution error:" and a Python
    stack of the node ("Detected at node ...", "File ..."); the cause comes after
    (e.g. "assertion failed: [...]"). Those headers and stack lines are skipped.
    """
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    useful = [ln for ln in lines if not (ln.endswith(":") or ln.startswith(("File ", "Detected at node", "[[", "<")))]
    return ((useful or lines or [type(e).__name__])[0])[:limit]


def import_runtime(module: str, package: str) -> Any:
    """Import a runtime's Python module, or say which package to install (RuntimeUnavailableError)."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise RuntimeUnavailableError(f"{module} is not installed: pip install {package}") from e


def _shape(sig: Any) -> list[int | None]:
    return [None if (d is None or int(d) < 0) else int(d) for d in sig]
