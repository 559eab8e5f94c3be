"""``edgefm train``."""

from __future__ import annotations

from typing import Any

import click

from edgefm.cli.options import ARTIFACTS, DATA_DIR, NO_VERIFY
from edgefm.train.config import LRSchedule, ModelKind


@click.command("train")
@click.option("--model", type=click.Choice(ModelKind.choices()), default=ModelKind.MLP.value, show_default=True,
              help="mlp: the reference 784-20-10 network; cnn: a tiny convnet with batch norm (92.1-92.4% test accuracy measured in 13 epochs).")
@click.option("--epochs", type=int, default=None, help="Epochs in total [default: mlp 5, cnn 12].")
@click.option("--batch-size", type=int, default=None, help="Batch size [default: mlp 64, cnn 128].")
@click.option("--learning-rate", type=float, default=None, help="SGD learning rate [default: mlp 0.1, cnn 0.05 with Nesterov momentum 0.9].")
@click.option("--lr-schedule", type=click.Choice(LRSchedule.choices()), default=None,
              help="Learning-rate schedule per epoch [default: mlp constant, cnn cosine].")
@click.option("--hidden-units", type=int, default=None, help="Width of the hidden dense layer [default: mlp 20, cnn 48].")
@click.option("--threads", type=int, default=None,
              help="TensorFlow threads [default: mlp 1 (faster for its tiny ops), cnn all cores].")
@click.option("--seed", type=int, default=0, show_default=True, help="Same seed, same weights and metrics.")
@DATA_DIR
@NO_VERIFY
@ARTIFACTS
@click.option("--eager", is_flag=True, help="Run the same train step eagerly (debugging; much slower).")
@click.option("--jit/--no-jit", default=None,
              help="Compile the training loop with XLA [default: on for mlp (0.11 vs 0.15 s/epoch, same "
                   "weights), off for cnn (XLA's CPU convolutions are ~30x slower)].")
@click.option("--resume", is_flag=True, help="Continue from the last completed epoch's checkpoint up to --epochs.")
@click.option("--force", is_flag=True,
              help="Replace a finished run in ARTIFACTS (its SavedModel, checkpoints and manifest); without it a "
                   "new run into such a directory is refused.")
@click.option("--json", "as_json", is_flag=True, help="Print the training record (metrics, history, paths) as JSON.")
@click.option("--quiet", "-q", is_flag=True, help="No progress output.")
@click.option("--distribute", is_flag=True,
              help="Be one worker of the MultiWorkerMirroredStrategy cluster in TF_CONFIG (start the same command "
                   "on every machine; --artifacts must be shared storage).")
@click.option("--workers", type=int, default=None,
              help="Start this many workers on this machine (free 127.0.0.1 ports) and restart them all from the "
                   "last checkpoint if one dies.")
@click.option("--connect-timeout", type=float, default=120.0, show_default=True,
              help="Seconds for every worker of the cluster to come up.")
@click.option("--max-restarts", type=int, default=3, show_default=True,
              help="With --workers: restarts of the whole cluster after a worker dies.")
@click.option("--steps-per-call", type=int, default=100, hidden=True)  # the library option, for --workers' workers
def train_cmd(**options: Any) -> None:
    """Train the classifier on Fashion-MNIST and write the SavedModel.

    Graph mode (tf.function) with GradientTape; evaluates on the test split and writes
    ARTIFACTS/saved_model, manifest.json, training_curves.png and per-epoch checkpoints.

    \b
    Examples:
      edgefm train
      edgefm train --model cnn --artifacts artifacts-cnn
      edgefm train --epochs 10 --resume
      edgefm train --eager --force       # replace the run in artifacts/
      edgefm train --workers 2
      TF_CONFIG='{"cluster": {"worker": ["a:2222", "b:2222"]}, "task": {"type": "worker", "index": 0}}' \\
        edgefm train --distribute --artifacts /shared/artifacts
    """
    from edgefm.cli.console import echo_json, progress_for
    from edgefm.core.rundir import refuse_finished_run
    from edgefm.train.progress import TrainReporter
    from edgefm.train.trainer import train

    force, as_json = options["force"], options["as_json"]
    cfg = build_config(**options)
    if not cfg.distribute:  # a cluster's workers are started by a launcher (or a scheduler) that checked
        refuse_finished_run(cfg.artifacts, force=force, resume=cfg.resume)  # after the options are known valid
    with progress_for(cfg.quiet) as progress:
        # A cluster's workers make their own reporter: only the chief prints.
        one_process = not cfg.distribute and not cfg.workers
        result = train(cfg, reporter=TrainReporter(quiet=cfg.quiet, progress=progress) if one_process else None)
    if result.manifest is None:  # a worker that is not the chief: the chief writes the manifest
        click.echo(f"worker done; the chief writes {cfg.artifacts / 'manifest.json'}")
        return
    t = result.manifest.training
    if as_json:
        echo_json({"artifacts": str(cfg.artifacts), "manifest": str(cfg.artifacts / "manifest.json"), "training": t})
        return
    click.echo(f"test accuracy {100 * t['test_accuracy']:.2f}%  test loss {t['test_loss']:.4f}  "
               f"-> {cfg.artifacts / 'manifest.json'}")


def build_config(*, no_verify: bool, force: bool = False, as_json: bool = False, **options: Any) -> Any:
    """The ``TrainConfig`` of the command's options (also what a worker of ``--workers`` parses back).

    ``--force`` and ``--json`` are the command's, not the training's: they are not in the config.
    """
    from edgefm.train.config import TrainConfig

    return TrainConfig(verify_data=not no_verify, **options)
