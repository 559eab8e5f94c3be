"""``edgefm train``: the reference network trained with GradientTape in graph mode.

Speed comes from keeping the host out of the loop: the training split lives in
memory as a tensor, each epoch is shuffled per sample with a stateless (seeded)
permutation whose indices are reshaped to ``[steps, batch]``, and one ``tf.function``
call runs ``steps_per_call`` SGD steps in a ``tf.while_loop`` (autograph's
``tf.range`` loop), each gathering its batch from the resident split, accumulating
loss and accuracy as tensors. The host syncs
once per chunk, only to update the progress line. ``--eager`` runs the very same
step function without ``tf.function``. Per model (measured, see
``edgefm.train.config.MODEL_DEFAULTS``) the MLP runs on one TensorFlow thread with the
loop compiled by XLA, a whole epoch per call; the CNN on all cores without XLA.

``--distribute`` runs the same loop on every worker of a MultiWorkerMirroredStrategy
(``edgefm.train.replicas``): each worker shuffles the same permutation, takes its slice
of every global batch, and the gradients are summed across workers per step. The chief
alone evaluates and writes ``state.json``, the SavedModel and the manifest; the others
checkpoint to temporary directories. One process is the strategy-free case of the same
step runner.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgefm.core.contract import (
    CHECKPOINT_DIRNAME,
    CLASS_NAMES,
    CURVES_NAME,
    IMAGE_SHAPE,
    SAVEDMODEL_KEY,
    SERVING_SIGNATURE,
)
from edgefm.core.errors import ConfigError, ModelFileError, OutputError, TrainingInterrupted
from edgefm.core.fileio import atomic_output_path, atomic_write_json, ensure_directory
from edgefm.core.interrupts import interrupts_noted, signals_deferred
from edgefm.core.locking import artifacts_lock
from edgefm.core.manifest import Artifact, Manifest, edgefm_version, tool_versions
from edgefm.core.metrics import confusion_matrix
from edgefm.data import fashion_mnist as ds
from edgefm.train.cluster import ClusterSpec
from edgefm.train.config import MODEL_DEFAULTS, LRSchedule, ModelKind, TrainConfig
from edgefm.train.progress import EpochStats, TrainReporter, TrainResult

STATE_NAME = "state.json"


#: an image's pixels as the step runner gathers them: four uint8 pixels to a uint32 element
PACKED_ROW = IMAGE_SHAPE[0] * IMAGE_SHAPE[1] // 4


def pack_images(images: np.ndarray) -> np.ndarray:
    """uint8 images ``[N, 28, 28]`` as uint32 rows ``[N, 196]``, four pixels to an element.

    XLA gathers element by element, so a step's 64 images are 12,544 elements gathered this way
    instead of 50,176; the step bitcasts them back to the same uint8 pixels. The MLP's XLA-compiled
    epoch took 0.90x the time (measured side by side, issue 20). A view of ``images`` when it is
    contiguous, not a copy.
    """
    flat = np.ascontiguousarray(images, dtype=np.uint8).reshape(len(images), -1)
    return flat.view(np.uint32)


def make_step_runner(
    model: Any, learning_rate: Any, eager: bool, jit: bool = False, replicas: Any = None,
    momentum: float = 0.0, velocity: list[Any] | None = None, flips: Any = None, label_smoothing: float = 0.0,
) -> Callable[..., Any]:
    """Return ``run_steps(x, y, idx) -> (loss_sum, correct)``: one SGD step per row of ``idx``.

    ``x``: the images as ``pack_images`` packs them, uint32 ``[N, 196]``, and ``y``: int32
    labels ``[N]``, the whole split, resident; ``idx``: int32 ``[S, B]``, the sample indices of
    ``S`` batches of ``B``. Each step gathers its batch inside the loop, so an epoch never copies
    the split (measured on 2 cores: the per-epoch ``tf.gather`` of all 60,000 images plus its
    slice cost ~15 ms of the MLP's ~75 ms epoch; 64 rows gathered per step cost ~7 ms in all).
    Images stay uint8 until the step scales them to [0, 1] (the same float32 division as
    ``Split.scaled``).

    ``learning_rate`` is a float or a ``tf.Variable`` (for a schedule). ``momentum`` > 0:
    Nesterov momentum, ``velocity`` one variable per trainable variable (checkpointed by
    the caller). ``flips``: a bool ``tf.Variable [N]`` (set per epoch by the caller); a sample
    whose flag is set is flipped left-right. The step differentiates ``model.training_logits``
    (batch statistics for a batch-norm model). The step is plain TensorFlow; it becomes a
    graph in exactly one place, here.

    ``replicas`` (``edgefm.train.replicas``): who shares each global batch ``B``.
    ``None`` is one process, where every hook is the identity or the plain op. With
    ``Workers``, each worker steps on its slice of every batch and the sums
    ``loss_sum, correct`` cover the whole cluster.
    """
    import tensorflow as tf

    from edgefm.train.replicas import ONE_PROCESS

    replicas = replicas or ONE_PROCESS
    variables = model.trainable_variables
    lr = learning_rate if isinstance(learning_rate, tf.Variable) else tf.constant(learning_rate, tf.float32)

    def train_step(x: tf.Tensor, y: tf.Tensor, global_batch: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        with tf.GradientTape() as tape:
            logits = model.training_logits(x)
            if label_smoothing:
                k = tf.cast(tf.shape(logits)[1], tf.float32)
                targets = tf.one_hot(y, tf.shape(logits)[1]) * (1.0 - label_smoothing) + label_smoothing / k
                per_example = tf.nn.softmax_cross_entropy_with_logits(labels=targets, logits=logits)
            else:
                per_example = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits)
            loss = replicas.mean_loss(per_example, global_batch)
        grads = replicas.sum_gradients(tape.gradient(loss, variables))
        if momentum:
            for v, g, m in zip(variables, grads, velocity or []):
                m.assign(momentum * m + g)
                v.assign_sub(lr * (g + momentum * m))
        else:
            for v, g in zip(variables, grads):
                v.assign_sub(lr * g)
        correct = tf.reduce_sum(tf.cast(tf.equal(tf.argmax(logits, axis=1, output_type=tf.int32), y), tf.float32))
        return tf.reduce_sum(per_example), correct

    def run_steps(x_all: tf.Tensor, y_all: tf.Tensor, idx: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        loss_sum = tf.constant(0.0)
        correct = tf.constant(0.0)
        global_batch = tf.shape(idx)[1]
        # The loop is around `replicas.run` (strategy.run), never inside it: see edgefm.train.replicas.
        # Each step indexes a whole row of `idx` (`idx[i]`): with XLA a row is a static-size slice;
        # a flat index vector sliced `[i * B : (i + 1) * B]` made XLA compile for 97 s (measured).
        for i in tf.range(tf.shape(idx)[0]):
            rows = replicas.shard(idx[i])
            x = tf.reshape(tf.bitcast(tf.gather(x_all, rows), tf.uint8), [-1, *IMAGE_SHAPE])
            y = tf.gather(y_all, rows)
            if flips is not None:
                x = tf.where(tf.gather(flips, rows)[:, None, None], tf.reverse(x, [2]), x)
            batch_loss, batch_correct = replicas.run(train_step, tf.cast(x, tf.float32) / 255.0, y, global_batch)
            loss_sum += batch_loss
            correct += batch_correct
        return replicas.total(loss_sum), replicas.total(correct)

    if eager:
        return run_steps
    return tf.function(
        run_steps,
        jit_compile=jit,
        # jit is per model (train/config.py MODEL_DEFAULTS, measured): on for the MLP
        # (0.11 vs 0.15 s/epoch, ~0.7 s to compile), off for the CNN (XLA's CPU
        # convolutions are ~30x slower).
        input_signature=[
            tf.TensorSpec([None, PACKED_ROW], tf.uint32),
            tf.TensorSpec([None], tf.int32),
            tf.TensorSpec([None, None], tf.int32),
        ],
    )


def learning_rate_at(cfg: TrainConfig, epoch: int) -> float:
    """The learning rate of (0-based) ``epoch`` under ``cfg.lr_schedule``."""
    if cfg.lr_schedule is LRSchedule.COSINE:
        return cfg.learning_rate * 0.5 * (1.0 + math.cos(math.pi * epoch / cfg.epochs))
    return cfg.learning_rate


def make_evaluator(model: Any) -> Callable[..., Any]:
    """``evaluate(x, y) -> (loss_sum, predictions)`` in one graph call."""
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec([None, 28, 28], tf.float32), tf.TensorSpec([None], tf.int32)])
    def evaluate(x: tf.Tensor, y: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        logits = model(x)
        loss = tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits))
        return loss, tf.argmax(logits, axis=1, output_type=tf.int32)

    return evaluate


def epoch_permutation(n: int, seed: int, epoch: int) -> Any:
    """The per-sample shuffle of one epoch: a function of (seed, epoch) only, so resume replays it."""
    import tensorflow as tf

    # A stateless Fisher-Yates-style shuffle of the indices (TF's documented contract for stateless
    # ops: the same output for the same seed on CPU, not promised across TF versions). It replaced
    # an argsort of stateless uniform keys: 0.4 ms vs 5-11 ms per epoch on this 2-core machine,
    # next to the MLP's ~60 ms epoch (measured, issue 20).
    return tf.random.experimental.stateless_shuffle(tf.range(n, dtype=tf.int32), seed=(seed, 1000 + epoch))


#: what `_checkpoint_state` records as "weights_layout" per model (see there)
WEIGHTS_LAYOUT = {ModelKind.MLP: 2, ModelKind.CNN: 3}


def _checkpoint_state(cfg: TrainConfig) -> dict[str, Any]:
    """What must match for ``--resume`` to continue the same run."""
    return {
        "model": cfg.model.value,
        "hidden_units": cfg.hidden_units,
        "batch_size": cfg.batch_size,
        "learning_rate": cfg.learning_rate,
        "lr_schedule": cfg.lr_schedule.value,
        "seed": cfg.seed,
        # the variables' layout, refused by name when it differs: 2, edgefm 0.1's MLP stored w1 [784, hidden];
        # 3, the CNN's first batch norm lost its trainable scale g1 (a restore would ignore the one an older run has)
        "weights_layout": WEIGHTS_LAYOUT[cfg.model],
    }


def train(cfg: TrainConfig, reporter: TrainReporter | None = None) -> TrainResult:
    """Train, evaluate, save the SavedModel and write ``manifest.json``; return both.

    ``cfg.workers``: start that many local workers (``edgefm.train.launcher``) and wait
    for them. ``cfg.distribute``: this process is one worker of the cluster ``TF_CONFIG``
    describes; only the chief saves, evaluates and writes the manifest.
    """
    if cfg.workers is not None:
        from edgefm.train.launcher import launch

        with artifacts_lock(ensure_directory(cfg.artifacts), "edgefm train --workers", notify=_stderr_note):
            return launch(cfg)
    if cfg.distribute:  # a worker: its launcher (or scheduler) holds the directory
        return _train(cfg, reporter)
    with artifacts_lock(ensure_directory(cfg.artifacts), "edgefm train", notify=_stderr_note):
        return _train(cfg, reporter)


def _stderr_note(text: str) -> None:
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def _train(cfg: TrainConfig, reporter: TrainReporter | None) -> TrainResult:
    """``train`` for one process or one worker of a cluster (the artifacts directory locked by the caller)."""
    # TF_CONFIG, then the dataset: bad input is reported before seconds of TensorFlow import.
    cluster = ClusterSpec.from_environment() if cfg.distribute else None
    train_split, test_split = _load_splits(cfg)
    if cfg.batch_size > len(train_split):
        raise ConfigError(
            f"--batch-size {cfg.batch_size} is more than the {len(train_split):,} training images: an epoch would "
            f"have no full batch. Pass at most {len(train_split):,} (the reference uses 64)."
        )
    root = ensure_directory(cfg.artifacts)
    if cluster is not None:
        # Off GCP, nothing may probe the metadata server (tf.distribute's failure handling asks it).
        os.environ.setdefault("GCE_METADATA_IP", "127.0.0.1:0")
    tf = _import_tensorflow()
    chief = cluster is None or cluster.is_chief
    reporter = reporter or TrainReporter(quiet=cfg.quiet or not chief)
    threads = _apply_threads(tf, cfg.threads, reporter)
    replicas = _replicas(cfg, cluster, root, train_split)
    try:
        run = _prepare_run(tf, cfg, root, reporter, replicas)
        data = _as_tensors(tf, train_split, test_split)
        _run_epochs(tf, cfg, run, data, root, reporter, replicas)
    finally:
        if run_dir := _private_checkpoints(replicas, root):
            shutil.rmtree(run_dir, ignore_errors=True)
    if not replicas.is_chief:
        return TrainResult(manifest=None, history=run.history)
    saved, scores = _save_and_evaluate(tf, run.model, root, data, reporter)
    training = _training_record(cfg, run, threads, data, scores, replicas)
    manifest = _build_manifest(cfg, training, saved)
    _write_outputs(root, run.history, manifest)
    reporter.finish(manifest)
    return TrainResult(manifest=manifest, history=run.history)


def _replicas(cfg: TrainConfig, cluster: ClusterSpec | None, root: Path, train_split: ds.Split) -> Any:
    """One process, or this worker of the cluster once every worker agrees on the options and the data."""
    from edgefm.train import replicas

    if cluster is None:
        return replicas.ONE_PROCESS
    # What must be equal on every worker: the checkpoint's options, the epochs and chunking (every
    # worker must make the same collective calls), and the training data (its digest).
    agreed = {**_checkpoint_state(cfg), "epochs": cfg.epochs, "steps_per_call": cfg.steps_per_call,
              "resume": cfg.resume, "train data": _data_digest(train_split)}
    return replicas.join_cluster(cluster, connect_timeout=cfg.connect_timeout, root=root, agreed=agreed)


def _data_digest(split: ds.Split) -> str:
    import zlib

    return f"{len(split)} samples, crc32 {zlib.crc32(split.labels.tobytes(), zlib.crc32(split.images.tobytes())):08x}"


def _private_checkpoints(replicas: Any, root: Path) -> Path | None:
    """Where a non-chief worker writes its checkpoints (MWMS has every worker save; only the chief's are kept)."""
    if replicas.is_chief:
        return None
    # Named after the run, not the process: a worker restarted after a SIGKILL (which left no
    # chance to clean up) reuses, and so replaces, the directory of the one it replaces.
    run_id = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"edgefm-worker{replicas.rank}-{run_id}-checkpoints"


@dataclass
class _Run:
    """The model and its checkpointed progress: what each epoch advances and ``--resume`` restores."""

    model: Any
    velocity: list[Any]  # the momentum's tf.Variables, one per trainable variable (none: plain SGD)
    epoch_var: Any  # tf.Variable: completed epochs, saved in the checkpoint with the model
    manager: Any  # tf.train.CheckpointManager: over ckpt_dir on the chief, a private directory elsewhere
    ckpt_dir: Path  # the run's checkpoints (what --resume reads, on every worker)
    state: dict[str, Any]  # _checkpoint_state(cfg), written beside each checkpoint
    history: list[EpochStats]
    start_epoch: int


@dataclass
class _Tensors:
    """Both splits as in-memory tensors: train as uint8 (the step scales it), test scaled."""

    x_train: Any
    y_train: Any
    x_test: Any
    y_test: Any
    y_test_np: np.ndarray  # the test labels as int32, for the host-side metrics
    n_train: int
    n_test: int


@dataclass
class _Stepper:
    """The (compiled) step and evaluation, and how an epoch is cut into ``run_steps`` calls."""

    run_steps: Callable[..., Any]
    evaluate: Callable[..., Any]
    lr_var: Any  # tf.Variable the step reads: set per epoch by the schedule
    batch_size: int
    steps: int  # full batches per epoch
    rest: int  # samples in the last, smaller batch (0: none)
    chunk: int  # steps per run_steps call
    flips: Any = None  # tf.Variable bool [N]: which samples this epoch flips (None: no augmentation)

    @property
    def batches(self) -> int:
        """Batches per epoch, the smaller last one included (what the progress line counts)."""
        return self.steps + (1 if self.rest else 0)


@dataclass
class _Scores:
    """What the saved model scores on the test split: the numbers the manifest reports."""

    test_loss: float
    test_accuracy: float
    per_class: list[float]
    confusion: np.ndarray


def _load_splits(cfg: TrainConfig) -> tuple[ds.Split, ds.Split]:
    """The train and test splits, read (and verified if asked) before TensorFlow is imported."""
    train_split = ds.load_split("train", cfg.data_dir, verify=cfg.verify_data)
    test_split = ds.load_split("test", cfg.data_dir, verify=cfg.verify_data)
    return train_split, test_split


def _import_tensorflow() -> Any:
    """TensorFlow, imported quietly, and then the model module built on it."""
    from edgefm.core.quiet import import_tensorflow, quiet_native_output

    with quiet_native_output():  # TensorFlow's C++ start-up log lines
        tf = import_tensorflow()
    import edgefm.train.model  # noqa: F401  (imports tensorflow at module level: only after the quiet import)

    return tf


def _prepare_run(tf: Any, cfg: TrainConfig, root: Path, reporter: TrainReporter, replicas: Any) -> _Run:
    """Build the model and its checkpoint manager, then resume from the checkpoint or start afresh."""
    from edgefm.train.model import build_model

    ckpt_dir = root / CHECKPOINT_DIRNAME
    momentum = MODEL_DEFAULTS[cfg.model].momentum
    with replicas.scope():
        model = build_model(cfg.model, cfg.hidden_units, cfg.seed)
        velocity = [tf.Variable(tf.zeros_like(v), trainable=False, name=f"velocity_{i}")
                    for i, v in enumerate(model.trainable_variables)] if momentum else []
    epoch_var = tf.Variable(0, dtype=tf.int64, trainable=False, name="completed_epochs")
    # The velocity is part of the run's state: --resume continues the momentum where it stopped.
    ckpt = tf.train.Checkpoint(model=model, completed_epochs=epoch_var, **({"velocity": velocity} if velocity else {}))
    write_dir = _private_checkpoints(replicas, root) or ckpt_dir
    if write_dir != ckpt_dir:
        shutil.rmtree(write_dir, ignore_errors=True)  # a dead predecessor's private checkpoints
    manager = tf.train.CheckpointManager(ckpt, str(write_dir), max_to_keep=2)
    history: list[EpochStats] = []
    state = _checkpoint_state(cfg)
    if cfg.resume:
        history = _restore(ckpt, tf.train.latest_checkpoint(str(ckpt_dir)), ckpt_dir, state)
    elif replicas.is_chief:
        # A new run: nothing in this directory describes a finished run any more, and the previous
        # run's checkpoints go too: killed before its first epoch ends, this run would otherwise
        # leave them for `--resume` to revive under the new options.
        Manifest.path_in(root).unlink(missing_ok=True)
        shutil.rmtree(ckpt_dir, ignore_errors=True)
    start_epoch = int(epoch_var.numpy())
    if start_epoch >= cfg.epochs and cfg.resume:
        reporter.note(f"checkpoint already has {start_epoch} epochs; nothing to train, re-saving the model")
    return _Run(model, velocity, epoch_var, manager, ckpt_dir, state, history, start_epoch)


def _as_tensors(tf: Any, train_split: ds.Split, test_split: ds.Split) -> _Tensors:
    """Move both splits into TensorFlow once: epochs then shuffle and slice tensors, not arrays."""
    x_train = tf.constant(pack_images(train_split.images))
    y_train = tf.constant(train_split.labels.astype(np.int32))
    x_test = tf.constant(test_split.scaled())
    y_test_np = test_split.labels.astype(np.int32)
    y_test = tf.constant(y_test_np)
    return _Tensors(x_train, y_train, x_test, y_test, y_test_np, len(train_split), len(test_split))


def _make_stepper(tf: Any, cfg: TrainConfig, run: _Run, data: _Tensors, replicas: Any = None) -> _Stepper:
    """The step runner and evaluator for the run's model, and the epoch's cut into calls."""
    n, bs = data.n_train, cfg.batch_size
    steps = n // bs
    rest = n - steps * bs
    defaults = MODEL_DEFAULTS[cfg.model]
    lr_var = tf.Variable(cfg.learning_rate, dtype=tf.float32, trainable=False)
    flips = tf.Variable(tf.zeros([n], tf.bool), trainable=False) if defaults.flip else None
    run_steps = make_step_runner(run.model, lr_var, cfg.eager, jit=cfg.jit, replicas=replicas,
                                 momentum=defaults.momentum, velocity=run.velocity, flips=flips,
                                 label_smoothing=defaults.label_smoothing)
    evaluate = make_evaluator(run.model)
    # XLA compiles once per input shape: with --jit the whole epoch is one call.
    chunk = steps if cfg.jit else max(1, min(cfg.steps_per_call, steps))
    return _Stepper(run_steps, evaluate, lr_var, bs, steps, rest, chunk, flips)


def _run_epochs(
    tf: Any, cfg: TrainConfig, run: _Run, data: _Tensors, root: Path, reporter: TrainReporter, replicas: Any
) -> None:
    """Train the epochs left, checkpointing each; SIGINT/SIGTERM become ``TrainingInterrupted``.

    An interruption keeps the last completed epoch's checkpoint and tells how to resume.
    On a cluster, a peer that dies becomes ``WorkerLostError`` (restart all with ``--resume``).
    """
    from edgefm.train.replicas import PEER_ERRORS, lost_peer_error

    stepper = _make_stepper(tf, cfg, run, data, replicas)
    reporter.start(cfg, n_params=run.model.parameter_count, start_epoch=run.start_epoch,
                   cluster=replicas.describe(cfg.batch_size))
    with interrupts_noted() as seen:
        epoch = run.start_epoch
        try:
            for epoch in range(run.start_epoch, cfg.epochs):
                stats = _train_epoch(tf, cfg, epoch, stepper, data, reporter, evaluate=replicas.is_chief)
                _checkpoint_epoch(run, stats)
                reporter.epoch_end(stats, stepper.batches)
        except PEER_ERRORS as e:
            if replicas.workers == 1:
                raise
            raise lost_peer_error(e, replicas.workers, epoch, run.ckpt_dir, root) from e
        except KeyboardInterrupt:
            done_epochs = int(run.epoch_var.numpy())
            how = seen[0] if seen else "SIGINT"
            raise TrainingInterrupted(
                f"Training stopped by {how} during epoch {done_epochs + 1}; the checkpoint of epoch "
                f"{done_epochs} is kept in {run.ckpt_dir} and no manifest claims a finished run. Run "
                f"`edgefm train --resume --artifacts {root}` (same options) to finish it."
            ) from None


def _train_epoch(
    tf: Any, cfg: TrainConfig, epoch: int, stepper: _Stepper, data: _Tensors, reporter: TrainReporter,
    evaluate: bool = True,
) -> EpochStats:
    """One (0-based) ``epoch``: shuffle, run the steps chunk by chunk, then score the test split.

    ``evaluate=False`` (a worker that is not the chief) leaves the test scores NaN.
    """
    n, bs, steps, chunk = data.n_train, stepper.batch_size, stepper.steps, stepper.chunk
    run_steps = stepper.run_steps
    t0 = time.perf_counter()
    stepper.lr_var.assign(learning_rate_at(cfg, epoch))
    perm = epoch_permutation(n, cfg.seed, epoch)
    if stepper.flips is not None:  # a seeded half of the samples, a function of (seed, epoch) like the shuffle
        stepper.flips.assign(tf.random.stateless_uniform([n], seed=(cfg.seed, 2000 + epoch)) < 0.5)
    batches = tf.reshape(perm[: steps * bs], [steps, bs])  # the step gathers each row's samples
    loss_sum = correct = 0.0
    done = 0
    reporter.epoch_start(epoch + 1, cfg.epochs, stepper.batches)
    for s in range(0, steps, chunk):
        chunk_loss, chunk_correct = run_steps(data.x_train, data.y_train, batches[s : s + chunk])
        loss_sum += float(chunk_loss)  # the one host sync per chunk, for the progress line
        correct += float(chunk_correct)
        done += min(chunk, steps - s)
        reporter.epoch_progress(done, loss_sum / (done * bs), correct / (done * bs), time.perf_counter() - t0)
    if stepper.rest:  # the last, smaller batch (what a batched tf.data pipeline gives)
        chunk_loss, chunk_correct = run_steps(data.x_train, data.y_train, perm[None, steps * bs :])
        loss_sum += float(chunk_loss)
        correct += float(chunk_correct)
    seconds = time.perf_counter() - t0
    test_loss = test_accuracy = float("nan")
    if evaluate:
        tl, preds = stepper.evaluate(data.x_test, data.y_test)
        test_loss, test_accuracy = float(tl) / data.n_test, float(np.mean(preds.numpy() == data.y_test_np))
    return EpochStats(
        epoch=epoch + 1,
        train_loss=loss_sum / n,
        train_accuracy=correct / n,
        test_loss=test_loss,
        test_accuracy=test_accuracy,
        seconds=seconds,
    )


def _checkpoint_epoch(run: _Run, stats: EpochStats) -> None:
    """Record the epoch ``stats`` describe (1-based) in the history, the checkpoint and state.json."""
    with signals_deferred():  # the checkpoint and its state.json, or neither
        run.history.append(stats)
        run.epoch_var.assign(stats.epoch)
        try:
            run.manager.save(checkpoint_number=stats.epoch)  # on a cluster every worker saves (MWMS requires it)
        except Exception as e:  # TF's OpError for a full disk or an unwritable directory
            raise OutputError.from_failure(run.manager.directory, e) from e
        atomic_write_json(Path(run.manager.directory) / STATE_NAME, {**run.state, "history": [vars(h) for h in run.history]})


def _save_and_evaluate(
    tf: Any, model: Any, root: Path, data: _Tensors, reporter: TrainReporter
) -> tuple[Artifact, _Scores]:
    """Save the SavedModel, then score what was *saved* on the test split: that is what the manifest reports."""
    from edgefm.train.model import write_savedmodel

    saved = write_savedmodel(model, root)
    reporter.note("evaluating the saved model on the test split")
    served = tf.saved_model.load(str(root / saved.path)).signatures[SERVING_SIGNATURE]
    logits = served(images=data.x_test)["logits"].numpy()
    test_loss = float(
        np.mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=data.y_test_np, logits=logits).numpy())
    )
    predictions = logits.argmax(axis=1)
    cm = confusion_matrix(data.y_test_np, predictions)
    per_class = (np.diag(cm) / np.maximum(cm.sum(axis=1), 1)).round(4).tolist()
    test_accuracy = float(np.mean(predictions == data.y_test_np))
    return saved, _Scores(test_loss=test_loss, test_accuracy=test_accuracy, per_class=per_class, confusion=cm)


def _training_record(
    cfg: TrainConfig, run: _Run, threads: int | None, data: _Tensors, scores: _Scores, replicas: Any = None
) -> dict[str, Any]:
    """The manifest's ``training`` section: options, the saved model's scores, the history, the data used."""
    last = run.history[-1] if run.history else None
    return {
        "model": cfg.model.value,
        "hidden_units": cfg.hidden_units,
        "parameters": run.model.parameter_count,
        "epochs": cfg.epochs,
        "batch_size": cfg.batch_size,
        "learning_rate": cfg.learning_rate,
        "lr_schedule": cfg.lr_schedule.value,
        "momentum": MODEL_DEFAULTS[cfg.model].momentum,
        "flip_augmentation": MODEL_DEFAULTS[cfg.model].flip,
        "label_smoothing": MODEL_DEFAULTS[cfg.model].label_smoothing,
        "seed": cfg.seed,
        "mode": "eager" if cfg.eager else "graph",
        "threads": threads,
        "jit_compile": cfg.jit,
        "resumed_from_epoch": run.start_epoch if cfg.resume else 0,
        "train_accuracy": last.train_accuracy if last else None,
        "train_loss": last.train_loss if last else None,
        "test_accuracy": scores.test_accuracy,
        "test_loss": scores.test_loss,
        "epoch_seconds": [round(h.seconds, 4) for h in run.history],
        "history": [vars(h) for h in run.history],
        "per_class_accuracy": dict(zip(CLASS_NAMES, scores.per_class)),
        "confusion_matrix": scores.confusion.tolist(),
        "dataset": {"directory": str(ds.locate(cfg.data_dir)), "train": data.n_train, "test": data.n_test, "verified": cfg.verify_data},
        "curves": CURVES_NAME,
        "cluster": replicas.record() if replicas is not None else None,  # None: one process
    }


def _build_manifest(cfg: TrainConfig, training: dict[str, Any], saved: Artifact) -> Manifest:
    """The run's manifest: the SavedModel as its one artifact, and the versions that produced it."""
    from edgefm.core.contract import IMAGE_SHAPE, INPUT_NAME, OUTPUT_NAMES
    from edgefm.core.manifest import Preprocessing

    # the model's contract as data: the same record a model brought with `export --saved-model` gets
    images = Preprocessing(size=IMAGE_SHAPE, channels=1, layout="NHW", scale=1 / 255, invert=False)
    return Manifest(
        model=cfg.model.value,
        labels=list(CLASS_NAMES),
        training=training,
        artifacts={SAVEDMODEL_KEY: saved},
        versions={"edgefm": edgefm_version(), **tool_versions("tensorflow-cpu", "tensorflow", "numpy")},
        preprocessing={INPUT_NAME: images.to_dict()},
        classes={OUTPUT_NAMES[0]: list(CLASS_NAMES)},
    )


def _write_outputs(root: Path, history: list[EpochStats], manifest: Manifest) -> None:
    """The curves (if any epoch ran), then the manifest last: it claims a finished run."""
    if history:
        plot_curves(history, root / CURVES_NAME)
    manifest.save(root)


def _apply_threads(tf: Any, threads: int | None, reporter: TrainReporter) -> int | None:
    """Set TensorFlow's thread pools; returns what is in effect (None: TF's default)."""
    if threads is None:
        return None
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
        return threads
    except RuntimeError:  # TF already ran ops in this process (library use): pools are fixed
        current = tf.config.threading.get_intra_op_parallelism_threads() or None
        if current != threads:
            reporter.note(f"threads: TensorFlow is already initialised in this process; keeping {current or 'its default'}")
        return current


def _restore(ckpt: Any, latest: str | None, ckpt_dir: Path, state: dict[str, Any]) -> list[EpochStats]:
    """Restore the checkpoint ``latest`` of ``ckpt_dir``; the history it completed (from state.json)."""
    if latest is None:
        raise ConfigError(
            f"--resume: no checkpoint in {ckpt_dir}. Train without --resume first (an interrupted "
            "run keeps one checkpoint per completed epoch there)."
        )
    try:
        saved = json.loads((ckpt_dir / STATE_NAME).read_text())
        if not isinstance(saved, dict):
            raise ValueError(f"a JSON {type(saved).__name__}, not an object")
    except (OSError, ValueError, RecursionError) as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise ConfigError(f"--resume: {ckpt_dir / STATE_NAME} is missing or unreadable ({e}); train without --resume.") from e
    mismatched = {k: (saved.get(k), v) for k, v in state.items() if saved.get(k) != v}
    if mismatched:
        detail = ", ".join(f"{k}: checkpoint {a!r} vs now {b!r}" for k, (a, b) in mismatched.items())
        raise ConfigError(f"--resume: the checkpoint in {ckpt_dir} was trained with other options ({detail}). "
                          "Resume with the same options, or train without --resume.")
    try:
        ckpt.restore(latest).assert_existing_objects_matched()
        done = int(ckpt.completed_epochs.numpy())
        return [EpochStats(**h) for h in saved.get("history", [])][:done]
    except Exception as e:  # TF raises OpError, IndexError, AssertionError... for a truncated or foreign checkpoint
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise ModelFileError(
            f"--resume: the checkpoint {latest} in {ckpt_dir} cannot be restored "
            f"({type(e).__name__}: {reason}); it is truncated or corrupt. Delete {ckpt_dir} and train without --resume."
        ) from e


def plot_curves(history: list[EpochStats], path: Path) -> None:
    """Loss and accuracy per epoch (train and test), written atomically as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h.epoch for h in history]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.4), dpi=100)
    ax1.plot(epochs, [h.train_loss for h in history], "o-", label="train")
    ax1.plot(epochs, [h.test_loss for h in history], "s--", label="test")
    ax1.set(title="loss", xlabel="epoch")
    ax2.plot(epochs, [100 * h.train_accuracy for h in history], "o-", label="train")
    ax2.plot(epochs, [100 * h.test_accuracy for h in history], "s--", label="test")
    ax2.set(title="accuracy (%)", xlabel="epoch")
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
        ax.legend()
        ax.xaxis.get_major_locator().set_params(integer=True)
    fig.tight_layout()
    with atomic_output_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
