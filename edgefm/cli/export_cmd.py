"""``edgefm export``."""

from __future__ import annotations

from pathlib import Path

import click

from edgefm.cli.options import ARTIFACTS, DATA, DATA_DIR, IMPORT, NO_VERIFY, VALUE_RANGE
from export.config import DEFAULT_OPSET, ExportFormat, Quantization


@click.command("export")
@ARTIFACTS
@IMPORT
@click.option("--saved-model", "saved_model", type=click.Path(path_type=Path, file_okay=False), default=None,
              metavar="DIR", help="Export a TF2 SavedModel edgefm did not train: copied into ARTIFACTS/saved_model with "
                                  "a manifest recording its signature, then converted like edgefm's own.")
@click.option("--keras", "keras_file", type=click.Path(path_type=Path, dir_okay=False), default=None,
              metavar="FILE.keras", help="Export a Keras 3 model (exported to a SavedModel first, as model.export does).")
@click.option("--signature", default="serving_default", show_default=True,
              help="The SavedModel signature to export (--saved-model).")
@click.option("--labels", "labels_file", type=click.Path(path_type=Path, dir_okay=False), default=None,
              metavar="FILE", help="Class names, one per line, for the model's classification output.")
@click.option("--preprocess", "preprocess", multiple=True, metavar="KEY=VALUE ...",
              help="How an image file becomes the image input, e.g. 'size=224,224 channels=3 scale=1/255 "
                   "mean=0.485,0.456,0.406 std=0.229,0.224,0.225' (default: implied by the input's shape).")
@click.option("--force", is_flag=True, help="With --saved-model/--keras: replace an ARTIFACTS directory of another model.")
@click.option("--keep-going", "keep_going", is_flag=True,
              help="Write the variants that convert and report the others (exit 1), instead of writing nothing.")
@DATA
@VALUE_RANGE
@click.option("--format", "fmt", type=click.Choice(ExportFormat.choices()), default=ExportFormat.ALL.value,
              show_default=True, help="Which converters to run.")
@click.option("--quantize", type=click.Choice(Quantization.choices()), default=Quantization.ALL.value,
              show_default=True,
              help="none: float32; float16: float16 weights; dynamic: int8 weights; int8: full-integer, "
                   "calibrated on training images; all: every one. ONNX has none and int8 only.")
@click.option("--opset", type=int, default=DEFAULT_OPSET, show_default=True, help="ONNX opset (13-18).")
@click.option("--calibration-samples", type=int, default=None,
              help="Samples int8 is calibrated on: a seeded draw of training images for edgefm's models (default "
                   "2000), the first rows of --data for others (default 500).")
@click.option("--int8-io", is_flag=True,
              help="int8 TFLite takes and returns int8 tensors (integer-only accelerators); default float I/O.")
@click.option("--keep-float", "keep_float", multiple=True, metavar="LAYER",
              help="Keep this layer of the int8 models in float (repeatable or comma-separated; a TF op or Keras "
                   "layer scope as `verify --explain` names it): writes tflite_int8_mixed / onnx_int8_mixed beside "
                   "the plain int8 files. `verify --explain NAME --repair` proposes the set.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Seed of the calibration draw.")
@DATA_DIR
@NO_VERIFY
@click.option("--bundle", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Also write a deployable bundle here: model, labels, golden I/O from the test split, "
                   "the C runner source and check.sh, to re-run the parity check on the device.")
@click.option("--bundle-artifact", default=None, metavar="NAME",
              help="Artifact to bundle [default: tflite_float32, else the first exported .tflite].")
@click.option("--json", "as_json", is_flag=True,
              help="Print what was exported (names, files, sizes, sha256, manifest path) as JSON.")
@click.option("--quiet", "-q", is_flag=True, help="No progress and no summary table.")
def export_cmd(artifacts: Path, saved_model: Path | None, keras_file: Path | None, signature: str,
               labels_file: Path | None, preprocess: tuple[str, ...], force: bool, keep_going: bool, data: str | None,
               value_ranges: tuple[str, ...], fmt: str, quantize: str, opset: int, calibration_samples: int | None,
               int8_io: bool, keep_float: tuple[str, ...], seed: int, data_dir: Path | None, no_verify: bool, bundle: Path | None,
               bundle_artifact: str | None, as_json: bool, quiet: bool) -> None:
    """Convert ARTIFACTS/saved_model to TFLite and ONNX, with labels and provenance embedded.

    The SavedModel this command uses is loaded by TensorFlow, and loading runs its code: only use
    SavedModels you trust (`edgefm inspect` reads one without running it).

    Writes model_float32/float16/dynamic/int8.tflite, model.onnx and model_int8.onnx
    (as requested) and records each in manifest.json. Files and manifest are written
    only after every conversion succeeded. With no options every variant is exported.

    \b
    Examples:
      edgefm export
      edgefm export --format tflite --quantize int8 --int8-io
      edgefm export --format onnx --quantize none --opset 13
      edgefm export --bundle device-check/
      edgefm export --saved-model my_model/ --labels labels.txt --data calib.npz --artifacts my-artifacts
      edgefm export --keras model.keras --artifacts my-artifacts --keep-going
      edgefm export --quantize int8 --keep-float functional_1/fc2_1,output_0
    """
    from dataclasses import asdict

    from edgefm.cli.console import echo_json, output_width, progress_for
    from edgefm.core.errors import ExportError, UsageError
    from edgefm.data.sources import parse_value_ranges
    from export.config import ExportConfig
    from export.pipeline import bring_and_export
    from export.summary import summary_table

    cfg = ExportConfig(
        artifacts=artifacts, format=fmt, quantize=quantize, opset=opset,
        calibration_samples=calibration_samples, int8_io=int8_io, seed=seed, data_dir=data_dir,
        verify_data=not no_verify, data=data, value_ranges=parse_value_ranges(value_ranges), keep_going=keep_going,
        keep_float=tuple(n for group in keep_float for n in group.split(",")),
    )
    if saved_model is not None and keras_file is not None:
        raise UsageError("--saved-model and --keras both name the model to export; pass one of them.")
    brought = saved_model or keras_file
    if brought is None and (labels_file or preprocess or force):
        raise UsageError("--labels, --preprocess and --force describe a model brought with --saved-model or --keras.")
    bring_cfg = None
    if brought is not None:
        from edgefm.data.sources import parse_preprocess
        from export.bring import BringConfig

        bring_cfg = BringConfig(source=brought, artifacts=artifacts, keras=keras_file is not None, signature=signature,
                                labels=labels_file, preprocess=parse_preprocess(preprocess), force=force)
    with progress_for(quiet) as progress:
        result = bring_and_export(cfg, bring_cfg, progress)
    if not quiet and not as_json:
        click.echo(summary_table(result.manifest, result.exported, width=output_width()))
        if result.skipped:
            click.echo(f"(no variant for {', '.join(result.skipped)}: ONNX export supports none and int8)")
        click.echo(f"-> {result.manifest_path}")
    dest = name = None
    if bundle is not None:
        from runtime_check.native.bundle import default_bundle_artifact, write_bundle

        name = bundle_artifact or default_bundle_artifact(result.manifest)
        dest = write_bundle(artifacts, result.manifest, name, bundle, data_dir=data_dir, verify_data=not no_verify)
        if not as_json:
            click.echo(f"bundle: {dest} ({name}; on the device: ./check.sh /path/to/libLiteRt.so)")
    if as_json:
        echo_json({
            "manifest": str(result.manifest_path),
            "exported": {n: asdict(result.manifest.artifacts[n]) for n in result.exported},
            "skipped": result.skipped,
            "bundle": None if dest is None else {"path": str(dest), "artifact": name},
            "failed": {f.name: f.message for f in result.failed},
        })
    if result.failed:
        from export.pipeline import failure_summary

        raise ExportError(
            f"{len(result.failed)} variant{'s' if len(result.failed) > 1 else ''} did not convert (--keep-going wrote the "
            f"others). " + failure_summary(result.failed, result.exported))
