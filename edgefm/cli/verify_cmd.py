"""``edgefm verify``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from edgefm.cli.options import (
    ARTIFACTS,
    DATA,
    DATA_DIR,
    IMPORT,
    NO_VERIFY,
    VALUE_RANGE,
    BoundOverride,
    parse_name_values,
)


@click.command("verify")
@ARTIFACTS
@IMPORT
@click.option("--split", default="test", show_default=True, metavar="test|train",
              help="The Fashion-MNIST split to verify on: the held-out test split (10,000 images) or the train "
                   "split (60,000; e.g. to see how verify's cost grows with the inputs).")
@click.option("--samples", type=int, default=None, metavar="N",
              help="Verify on the first N images of the split (default: all of them).")
@click.option("--batch-size", type=int, default=1000, show_default=True, help="Inputs per runtime call.")
@click.option("--only", "only", multiple=True, metavar="NAME",
              help="Check only this artifact (manifest name; repeatable or comma-separated).")
@click.option("--atol", "atol", multiple=True, metavar="NAME[.OUTPUT]=VALUE",
              help="Bound on the max abs error of artifact NAME (repeatable), e.g. tflite_float16=0.05; "
                   "NAME.OUTPUT=VALUE bounds one output of a model with several.")
@click.option("--min-top1", "min_top1", multiple=True, metavar="NAME=VALUE",
              help="Minimum top-1 agreement with TF of artifact NAME, a fraction (repeatable), e.g. tflite_int8=0.95.")
@click.option("--bound", "bounds", multiple=True, type=BoundOverride(),
              help="Bound of any metric of artifact NAME (repeatable), e.g. onnx_int8.cosine=0.998 or "
                   "tflite_int8.mean_abs_error=0.3; VALUE 'info' reports the metric without judging it.")
@click.option("--report", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Where to write the JSON report (default: ARTIFACTS/verify-report.json).")
@click.option("--html", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Where to write the self-contained HTML page (default: the JSON report's path with .html, "
                   "i.e. ARTIFACTS/verify-report.html).")
@click.option("--no-html", "no_html", is_flag=True, help="Do not write the HTML page.")
@click.option("--json", "as_json", is_flag=True, help="Print the JSON report instead of the table.")
@click.option("--native", is_flag=True, help="Also run each artifact in the native C runner (needs a C compiler).")
@click.option("--device", "devices", multiple=True, metavar="qemu-aarch64[:CPU]|ssh://USER@HOST[:PORT][/DIR]",
              help="Also run every artifact on this board (repeatable): an Arm64 CPU emulated here (cortex-a53, "
                   "cortex-a72, cortex-a76 (default) or neoverse-n1) or a real board over SSH. Adds rows NAME@BOARD.")
@click.option("--device-any-cpu", "device_any_cpu", is_flag=True,
              help="Allow any qemu CPU name with --device qemu-aarch64:CPU, even `max` (wrong int8 results in qemu 7.2).")
@click.option("--known-hosts", "known_hosts", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="The known_hosts file the SSH board's host key is checked against (default: the user's).")
@click.option("--ssh-identity", "ssh_identity", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="The private key for the SSH board (default: ssh's own choice).")
@click.option("--cross", is_flag=True, help="SSH board: ship the runner cross-compiled here instead of building it there.")
@click.option("--recompute-reference", "recompute_reference", is_flag=True,
              help="Run TensorFlow for the reference even if ARTIFACTS/reference-outputs.npz holds it for this "
                   "SavedModel, these inputs and this TensorFlow version.")
@click.option("--reference", type=click.Path(path_type=Path, file_okay=False), default=None, metavar="DIR",
              help="One-shot comparison without a manifest: the SavedModel to judge --model files against.")
@click.option("--model", "models", multiple=True, type=click.Path(path_type=Path, dir_okay=False), metavar="FILE",
              help="With --reference: a .tflite or .onnx file to check (repeatable).")
@click.option("--save-outputs", "save_outputs", type=click.Path(path_type=Path, dir_okay=False), default=None,
              metavar="FILE.npz", help="Also write TensorFlow's outputs (and what inputs made them) to FILE.npz.")
@click.option("--load-outputs", "load_outputs", type=click.Path(path_type=Path, dir_okay=False), default=None,
              metavar="FILE.npz", help="Judge against outputs saved by --save-outputs instead of running TensorFlow.")
@DATA
@click.option("--labels-data", "labels_data", type=click.Path(path_type=Path, dir_okay=False), default=None,
              metavar="FILE.npy", help="One integer class id per row of --data: accuracy and its change are reported.")
@VALUE_RANGE
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Seed of --data synthetic.")
@DATA_DIR
@NO_VERIFY
@click.option("--explain", "explain", multiple=True, is_flag=False, flag_value="", metavar="[NAME]",
              help="Name the layer where artifact NAME (repeatable or comma-separated; alone: every failing "
                   "artifact) parts from TensorFlow: every intermediate tensor compared on 64 inputs.")
@click.option("--repair", is_flag=True,
              help="For each explained int8 artifact (with --explain, else every failing one): find the fewest layers "
                   "to keep in float that make it pass, export that variant (NAME_mixed, as `export --keep-float`) "
                   "and verify it beside the fully quantized one.")
@click.option("--quiet", "-q", is_flag=True, help="Print nothing; only the exit status (and the error on failure).")
def verify_cmd(artifacts: Path, split: str, samples: int | None, batch_size: int, only: tuple[str, ...], atol: tuple[str, ...],
               min_top1: tuple[str, ...], bounds: tuple[tuple[str, str, float | None], ...], report: Path | None, html: Path | None, no_html: bool, as_json: bool,
               native: bool, devices: tuple[str, ...], device_any_cpu: bool, known_hosts: Path | None,
               ssh_identity: Path | None, cross: bool, recompute_reference: bool, reference: Path | None,
               models: tuple[Path, ...], save_outputs: Path | None, load_outputs: Path | None, data: str | None,
               labels_data: Path | None, value_ranges: tuple[str, ...], seed: int, data_dir: Path | None,
               no_verify: bool, explain: tuple[str, ...], repair: bool, quiet: bool) -> None:
    """Check every exported model against TensorFlow in its own runtime.

    The SavedModel this command uses is loaded by TensorFlow, and loading runs its code: only use
    SavedModels you trust (`edgefm inspect` reads one without running it).

    Runs the SavedModel in TensorFlow (the reference) and every .tflite/.onnx
    artifact of the manifest in LiteRT / ONNX Runtime on the held-out test split,
    then checks per artifact: checksum, NaN/Inf, max and mean abs logit error,
    cosine (mean per sample), top-1 agreement, accuracy drop, batch-1 invariance
    and that probabilities sum to 1, each against a per-variant bound. Writes
    verify-report.json and verify-report.html (one self-contained page: the
    table, logit-error histograms, confusion matrices, the images where an
    artifact disagrees with TF, training curves, sizes and latencies).
    TensorFlow's outputs are kept in ARTIFACTS/reference-outputs.npz and reused
    (without importing TensorFlow) while the SavedModel, the inputs and the
    TensorFlow version are the same; --recompute-reference runs it again.
    Exit status 0 when every check passes, 1 otherwise.

    \b
    Examples:
      edgefm verify
      edgefm verify --only tflite_int8 --min-top1 tflite_int8=0.95
      edgefm verify --samples 1000 --atol tflite_float16=0.05 --json
      edgefm verify --bound onnx_int8.cosine=0.998 --bound onnx_int8.mean_abs_error=0.3
      edgefm verify --html /tmp/parity.html
      edgefm verify --split train --no-html
      edgefm verify --artifacts my-model --data inputs.npz --labels-data labels.npy --native
      edgefm verify --reference saved_model/ --model a.tflite --model b.onnx --data inputs.npz
      edgefm verify --artifacts my-model --data inputs.npz --save-outputs golden.npz
      edgefm verify --device qemu-aarch64:cortex-a72 --samples 1000
      edgefm verify --device ssh://pi@raspberrypi.local/edgefm
      edgefm verify --explain tflite_int8
      edgefm verify --explain tflite_int8 --repair
    """
    from edgefm.cli.console import echo_json, output_width, progress_for, text_callback
    from edgefm.core.contract import REPORT_NAME
    from edgefm.core.errors import ParityError, UsageError
    from edgefm.data.sources import parse_value_ranges
    from runtime_check.device.targets import DeviceOptions
    from runtime_check.explain.pipeline import run_verify
    from runtime_check.verify.config import CheckConfig
    from runtime_check.verify.report import default_html_path
    from runtime_check.verify.text import render_table

    if html is not None and no_html:
        raise UsageError("--html and --no-html contradict each other; pass one of them.")
    if not no_html and html is None:
        html = default_html_path(report or (Path(REPORT_NAME) if reference is not None else artifacts / REPORT_NAME))

    cfg = CheckConfig(
        artifacts=artifacts, split=split, samples=samples, batch_size=batch_size,
        only=tuple(n.strip() for group in only for n in group.split(",") if n.strip()),
        atol=parse_name_values(atol, "--atol"), min_top1=parse_name_values(min_top1, "--min-top1"),
        bounds=_group_bounds(bounds),
        report=report, html=html, native=native, data_dir=data_dir, verify_data=not no_verify,
        recompute_reference=recompute_reference, data=data, labels_data=labels_data,
        value_ranges=parse_value_ranges(value_ranges), seed=seed, save_outputs=save_outputs,
        load_outputs=load_outputs, reference=reference, models=models, devices=devices,
        device_options=DeviceOptions(device_any_cpu, known_hosts, ssh_identity, cross),
    )
    with progress_for(quiet) as view:
        outcome = run_verify(cfg, explain=explain, repairer=_ExportRepairer(cfg.artifacts) if repair else None,
                             progress=view, on_line=text_callback(view))
    result, explained, repairs = outcome.report, outcome.explained, outcome.repairs
    explain = explain or (("",) if repair else ())
    if as_json:
        echo_json(result.to_dict())  # the explanations and repairs are part of it
    elif not quiet:
        from runtime_check.explain.explain import format_explanation
        from runtime_check.explain.repair import format_repair

        click.echo(render_table(result, width=output_width()))
        for ex in explained.values():
            click.echo("\n" + format_explanation(ex, width=output_width()))
        if explain and not explained:
            click.echo("\n--explain: no artifact failed; name one (--explain NAME) to compare its layers with TensorFlow.")
        for r in repairs.values():
            click.echo("\n" + format_repair(r, width=output_width()))
        if repair and explained and not repairs:
            click.echo("\n--repair: none of the explained artifacts is int8; only int8 models keep layers in float.")
    if not result.passed:
        raise ParityError(result.summary())


class _ExportRepairer:
    """``--repair``'s export side (the CLI wires the stages: ``runtime_check`` never imports ``export``): the
    keep-float quantizer of the manifest's SavedModel, and each proposal exported as ``NAME_mixed``."""

    def __init__(self, artifacts: Path) -> None:
        self.artifacts = artifacts

    def quantizer(self, name: str, fmt: str) -> Any:
        from export.pipeline import keep_float_quantizer

        return keep_float_quantizer(self.artifacts, fmt, like=name)

    def export_keep_float(self, fmt: str, keep_float: tuple[str, ...], like: str, progress: Any) -> str:
        from export.pipeline import export_keep_float

        return export_keep_float(self.artifacts, fmt, keep_float, like=like, progress=progress)


def _group_bounds(bounds: tuple[tuple[str, str, float | None], ...]) -> dict[str, dict[str, float | None]]:
    out: dict[str, dict[str, float | None]] = {}
    for name, metric, value in bounds:
        out.setdefault(name, {})[metric] = value
    return out
