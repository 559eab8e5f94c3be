"""A deployable bundle: one exported model plus everything needed to re-check it on the device.

``write_bundle`` writes, atomically (staged, then renamed into place)::

    DEST/
      <model>.tflite | <model>.onnx   the artifact, byte for byte
      labels.txt                      class names, one per line, index = line number - 1
      golden/input_<name>.npy         the first N images of the test split (float32 in [0, 1])
      golden/output_<name>.npy        their outputs from the Python binding of the same runtime
      runner_<runtime>.c              the C runner (no Python) and its header runner_common.h
      check.sh                        builds the runner if needed and runs the golden check
      SHA256SUMS                      model and golden inputs, checked by check.sh
      manifest.json                   sha256, sizes, I/O specs, tolerances, commands
      README.md                       the one-line build command and how to check and run

On the device: ``./check.sh /path/to/libLiteRt.so`` (or ``libonnxruntime.so.*``) prints
PASS/FAIL per output and exits 0 only if every output is within its tolerance.
"""

from __future__ import annotations

import json
import shlex
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from edgefm.core.contract import DEPLOYABLE_FORMATS, ONNX_FORMAT, SERVING_SIGNATURE, TFLITE_FORMAT
from edgefm.core.errors import ManifestError, ModelFileError, UsageError
from edgefm.core.fileio import atomic_directory, sha256_file
from edgefm.core.manifest import Artifact, Manifest, TensorSpec, edgefm_version, utc_now
from runtime_check.native.build import COMMON_HEADER, LIBRARY_ENV, SOURCES

BUNDLE_SCHEMA_VERSION = 1
#: format -> runner kind
RUNNER_FOR_FORMAT: dict[str, str] = {TFLITE_FORMAT: "litert", ONNX_FORMAT: "onnxruntime"}
#: the library each runner loads, as users know it
LIBRARY_NAME: dict[str, str] = {"litert": "libLiteRt.so", "onnxruntime": "libonnxruntime.so.<version>"}
#: Max abs difference allowed on the device, per quantization. Another CPU may pick other
#: kernels (float rounding differs slightly); quantized outputs may move by a step.
DEVICE_ATOL: dict[str, float] = {"none": 1e-4, "float16": 1e-3, "dynamic": 5e-2, "int8": 1e-1}
#: For outputs stored quantized (int8/uint8/int16 with a known scale): allow this many quantization steps.
INT8_STEPS = 2
MAX_GOLDEN_SAMPLES = 10_000


def device_tolerance(artifact: Artifact, spec: TensorSpec) -> float:
    """Tolerance for one output on a device: quantization steps when the scale is known, else the table."""
    if spec.scale is not None and spec.dtype in ("int8", "uint8", "int16"):
        return INT8_STEPS * float(spec.scale) * 1.0001
    return DEVICE_ATOL.get(artifact.quantization, DEVICE_ATOL["int8"])


def _safe(name: str) -> str:
    """The file name stem the C runner uses for a tensor name (runner_common.h: output_path)."""
    s = "".join(c if c.isalnum() or c in "._-" else "_" for c in name) or "_"
    return "_" + s[1:] if s.startswith(".") else s


def _golden_inputs(n: int, data_dir: Path | None, verify: bool) -> np.ndarray:
    from edgefm.data.fashion_mnist import load_split

    split = load_split("test", data_dir, verify=verify)
    if n > len(split):
        raise UsageError(f"golden_samples={n} but the test split has only {len(split)} images.")
    return split.scaled()[:n]


def default_bundle_artifact(manifest: Manifest) -> str:
    """What ships by default: the float32 .tflite, else the first .tflite, else the first .onnx."""
    deployable = manifest.deployable()
    if "tflite_float32" in deployable:
        return "tflite_float32"
    for fmt in DEPLOYABLE_FORMATS:
        for name, art in deployable.items():
            if art.format == fmt:
                return name
    raise ManifestError("No .tflite or .onnx artifact in the manifest to bundle; run `edgefm export` first.")


def write_bundle(
    artifacts: Path,
    manifest: Manifest,
    artifact_name: str,
    dest: Path,
    golden_samples: int = 16,
    data_dir: Path | None = None,
    verify_data: bool = True,
) -> Path:
    """Write the deployable bundle of ``artifact_name`` to ``dest`` (replaced whole); return ``dest``."""
    from runtime_check.runtimes.registry import runtime_for

    artifacts, dest = Path(artifacts), Path(dest)
    art = manifest.artifact(artifact_name)
    kind = RUNNER_FOR_FORMAT.get(art.format)
    if kind is None:
        deployable = ", ".join(sorted(manifest.deployable())) or "none; run `edgefm export`"
        raise UsageError(
            f"Artifact {artifact_name!r} is a {art.format}; a bundle holds a .tflite or .onnx model "
            f"(deployable artifacts: {deployable})."
        )
    if not 1 <= golden_samples <= MAX_GOLDEN_SAMPLES:
        raise UsageError(f"golden_samples must be between 1 and {MAX_GOLDEN_SAMPLES}, got {golden_samples}.")
    model_path = artifacts / art.path
    if not model_path.is_file():
        raise ModelFileError(f"{model_path} (artifact {artifact_name!r}) does not exist. Run `edgefm export` again.")
    digest = sha256_file(model_path)
    if digest != art.sha256:
        raise ManifestError(
            f"{model_path} changed since it was exported: sha256 {digest}, the manifest says {art.sha256}. "
            "Run `edgefm export` again so the bundle ships the file the manifest describes."
        )

    _check_destination(dest, artifacts)
    images = _golden_inputs(golden_samples, data_dir, verify_data)
    with runtime_for(model_path) as rt:
        if len(rt.input_specs) != 1:
            raise UsageError(f"{model_path} has {len(rt.input_specs)} inputs; a bundle feeds one image input.")
        input_name = rt.input_specs[0].name
        outputs = rt.infer({input_name: images})
        reference_runtime = {"runtime": rt.name, **rt.versions()}

    sources = [Path(__file__).resolve().parent / SOURCES[kind], Path(__file__).resolve().parent / COMMON_HEADER]
    model_file = model_path.name
    out_specs = {s.name: s for s in art.outputs}
    with atomic_directory(dest) as stage:
        shutil.copyfile(model_path, stage / model_file)
        (stage / "labels.txt").write_text("".join(f"{label}\n" for label in manifest.labels), encoding="utf-8")
        golden = stage / "golden"
        golden.mkdir()
        inputs_meta: dict[str, Any] = {}
        in_file = f"golden/input_{_safe(input_name)}.npy"
        np.save(stage / in_file, np.ascontiguousarray(images, dtype=np.float32))
        inputs_meta[input_name] = {"file": in_file, "sha256": sha256_file(stage / in_file), "shape": list(images.shape)}
        outputs_meta: dict[str, Any] = {}
        for name, value in outputs.items():
            file = f"golden/output_{_safe(name)}.npy"
            np.save(stage / file, np.ascontiguousarray(value, dtype=np.float32))
            spec = out_specs.get(name, TensorSpec(name, "float32", [None]))
            outputs_meta[name] = {
                "file": file,
                "sha256": sha256_file(stage / file),
                "shape": list(value.shape),
                "atol": device_tolerance(art, spec),
            }
        for src in sources:
            shutil.copyfile(src, stage / src.name)
        (stage / "SHA256SUMS").write_text(
            f"{digest}  {model_file}\n{inputs_meta[input_name]['sha256']}  {in_file}\n", encoding="utf-8"
        )
        build_cmd = f"cc -O2 -o runner {sources[0].name} -ldl"
        check_args = _check_args(model_file, inputs_meta, outputs_meta)
        script = _check_script(kind, build_cmd, check_args)
        (stage / "check.sh").write_text(script, encoding="utf-8")
        (stage / "check.sh").chmod(0o755)
        meta = {
            "bundle_schema_version": BUNDLE_SCHEMA_VERSION,
            "created": utc_now(),
            "edgefm": edgefm_version(),
            "artifact": artifact_name,
            "format": art.format,
            "quantization": art.quantization,
            "model": {"file": model_file, "sha256": digest, "bytes": model_path.stat().st_size},
            "inputs": [asdict(s) for s in art.inputs],
            "outputs": [asdict(s) for s in art.outputs],
            "labels": "labels.txt",
            "golden": {
                "samples": golden_samples,
                "source": "the first images of the Fashion-MNIST test split, float32 in [0, 1]",
                "reference": reference_runtime,
                "inputs": inputs_meta,
                "outputs": outputs_meta,
            },
            "runner": {
                "runtime": kind,
                "sources": [s.name for s in sources],
                "build": build_cmd,
                "library": LIBRARY_NAME[kind],
                "library_env": LIBRARY_ENV[kind],
                "check": f"./check.sh /path/to/{LIBRARY_NAME[kind]}",
            },
        }
        (stage / "manifest.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        (stage / "README.md").write_text(_readme(meta, build_cmd, check_args, manifest.labels), encoding="utf-8")
    return dest


def is_bundle(directory: Path) -> bool:
    """A directory ``write_bundle`` wrote: its manifest.json has the bundle's schema key."""
    try:
        meta = json.loads((Path(directory) / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return False
    return isinstance(meta, dict) and "bundle_schema_version" in meta


def _check_destination(dest: Path, artifacts: Path) -> None:
    """A bundle replaces ``dest`` whole: refuse a directory that holds anything else (or the artifacts)."""
    dest_r, artifacts_r = dest.resolve(), Path(artifacts).resolve()
    if dest_r == artifacts_r or artifacts_r.is_relative_to(dest_r):
        raise UsageError(
            f"--bundle {dest}: that directory holds the artifacts directory {artifacts}; a bundle replaces its "
            "directory whole. Pass a new directory, e.g. --bundle device-bundle."
        )
    if dest.is_dir() and any(dest.iterdir()) and not is_bundle(dest):
        raise UsageError(
            f"--bundle {dest}: the directory is not empty and is not an edgefm bundle; a bundle replaces its "
            "directory whole, so edgefm will not write there. Pass a new or empty directory."
        )
    if dest.exists() and not dest.is_dir():
        raise UsageError(f"--bundle {dest}: that path is a file, not a directory. Pass a new directory.")


def _check_args(model_file: str, inputs: dict[str, Any], outputs: dict[str, Any]) -> list[str]:
    args = ["--model", model_file, "--signature", SERVING_SIGNATURE]
    for name, m in inputs.items():
        args += ["--input", f"{name}={m['file']}"]
    for name, m in outputs.items():
        args += ["--expect", f"{name}={m['file']}", "--atol", f"{name}={m['atol']:.9g}"]
    return args


def _check_script(kind: str, build_cmd: str, check_args: list[str]) -> str:
    env, lib = LIBRARY_ENV[kind], LIBRARY_NAME[kind]
    src = SOURCES[kind]
    return f"""#!/bin/sh
# Re-run edgefm's golden check on this device. Exit status 0 = PASS.
#   usage: ./check.sh [--verbose] /path/to/{lib}      (or set {env})
# Needs a C compiler the first time (the runner is built beside this script).
# The runtime's own log lines on stderr (LiteRT prints a dozen per call: "INFO: ...", and "WARNING: [..registry.cc..]"
# for the NPU/GPU accelerators a CPU device does not have) show with --verbose.
set -eu
PATH="${{PATH:-/usr/local/bin:/usr/bin:/bin}}"
export PATH  # gcc finds its own programs (cc1) through PATH
cd "$(dirname "$0")"
VERBOSE=0
if [ "${{1:-}}" = "--verbose" ]; then VERBOSE=1; shift; fi
LIB="${{1:-${{{env}:-}}}}"
if [ -z "$LIB" ]; then
    echo "usage: $0 [--verbose] /path/to/{lib} (or set {env})" >&2
    exit 2
fi
if command -v sha256sum >/dev/null 2>&1; then
    if ! sha256sum -c SHA256SUMS >/dev/null 2>&1; then
        echo "check: FAIL: the model or golden input differs from the exported one (sha256sum -c SHA256SUMS)" >&2
        exit 9
    fi
fi
if [ ! -x runner ] || [ {src} -nt runner ] || [ {COMMON_HEADER} -nt runner ]; then
    {build_cmd}
fi
if [ "$VERBOSE" = 1 ]; then
    exec ./runner check --lib "$LIB" {" ".join(shlex.quote(a) for a in check_args)}
fi
# a private directory (mktemp -d, mode 0700): a fixed name in a shared /tmp follows a planted link, often as root
ERRDIR=$(mktemp -d "${{TMPDIR:-/tmp}}/edgefm-check.XXXXXX") || exit 1
trap 'rm -rf "$ERRDIR"' EXIT
ERR="$ERRDIR/stderr"
status=0
./runner check --lib "$LIB" {" ".join(shlex.quote(a) for a in check_args)} 2>"$ERR" || status=$?
grep -v -e '^INFO: ' -e '^WARNING: \\[[a-z_]*registry\\.cc:' "$ERR" >&2 || true
rm -rf "$ERRDIR"
exit "$status"
"""


def _readme(meta: dict[str, Any], build_cmd: str, check_args: list[str], labels: list[str]) -> str:
    runner = meta["runner"]
    model = meta["model"]

    def spec_line(s: dict[str, Any]) -> str:
        shape = "[" + ",".join("N" if d is None else str(d) for d in s["shape"]) + "]"
        quant = (
            f", stored as {s['dtype']} with scale {s['scale']:.9g} and zero point {s['zero_point']}: the runner "
            "takes and writes float32 and converts (`--raw` writes the stored integers)"
            if s.get("scale") is not None
            else ""
        )
        dtype = "float32" if s.get("scale") is not None else s["dtype"]
        return f"- `{s['name']}`: {dtype} {shape}{quant}"

    outputs = "\n".join(f"- `{n}`: atol {m['atol']:.3g}" for n, m in meta["golden"]["outputs"].items())
    run_cmd = (
        f"./runner run --lib /path/to/{runner['library']} --model {model['file']} --signature {SERVING_SIGNATURE} "
        f"--input {meta['inputs'][0]['name']}=my_images.npy --output-dir out/"
    )
    return f"""# {meta['artifact']}: edgefm deployment bundle

`{model['file']}` ({meta['format']}, quantization {meta['quantization']}, {model['bytes']} bytes,
sha256 `{model['sha256']}`), exported by edgefm {meta['edgefm']}.

Inputs (float32 images in [0, 1], 28x28 grayscale, light item on dark background):
{chr(10).join(spec_line(s) for s in meta['inputs'])}

Outputs:
{chr(10).join(spec_line(s) for s in meta['outputs'])}

Classes (`labels.txt`, line i = class i): {", ".join(labels)}.

## Build the runner (C, no Python)

    {build_cmd}

It loads the runtime library at run time ({runner['library']}: ship it with your app; the
`{'ai-edge-litert' if runner['runtime'] == 'litert' else 'onnxruntime'}` wheel for your platform contains it).

## Check this device

    ./check.sh /path/to/{runner['library']}

runs the {meta['golden']['samples']} golden images through the model and compares every output with
the one edgefm computed at export time ({meta['golden']['reference']['runtime']}):

{outputs}

It prints PASS/FAIL per output (max abs difference, top-1 agreement) and exits 0 only if all pass
(9 on a mismatch). The same check by hand:

    ./runner check --lib /path/to/{runner['library']} {" ".join(shlex.quote(a) for a in check_args)}

## Run on your own images

    {run_cmd}

Tensors are NumPy `.npy` files (float32, C order); each output is written as `out/<name>.npy`.
`./runner --help` lists every option and exit status.
"""
