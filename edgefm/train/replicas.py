"""Who takes part in a training step: one process, or the workers of a MultiWorkerMirroredStrategy.

The step runner (``edgefm.train.trainer.make_step_runner``) is written once against
``Replicas``. ``OneProcess`` is the strategy-free case: every hook is the identity or
the plain op, so one process runs exactly the ops it ran before distribution existed
(bit-identical weights). ``Workers`` wraps ``tf.distribute.MultiWorkerMirroredStrategy``:
every worker gets the same global batch, keeps its deterministic slice of it, and the
per-worker gradients of ``sum(loss) / global_batch`` are summed with one all-reduce
per step, so the update is the one-process update of the whole batch.

Measured on TF 2.21 CPU (prototype, issue 18): the ``tf.range`` loop must be *around*
``strategy.run`` in one ``tf.function`` (a loop inside it fails with "merge_call called
while defining a new graph"); string variables cannot be mirrored (MWMS broadcasts every
initial value with ``CollectiveBcastSend``, which rejects strings); XLA with CPU
collectives fails ("Collectives are not yet implemented for CPU devices when compiling
with XLA"), so ``--jit`` is refused with ``--distribute`` (``TrainConfig``).

This module imports TensorFlow at module level: import it only after
``edgefm.core.quiet.import_tensorflow``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import tensorflow as tf

# The unmirrored string variable is built by the resource-variable class itself: calling
# a subclass of tf.Variable bypasses the creator stack (VariableMetaclass: `_variable_call`
# returns None for subclasses; tensorflow/python/ops/variables.py), so the strategy's
# mirroring creator never sees it. There is no public spelling of this in TF 2.21.
from tensorflow.python.ops.resource_variable_ops import ResourceVariable

from edgefm.core.fileio import atomic_write_json
from edgefm.train.cluster import ClusterError, ClusterSpec, WorkerLostError, accepts_connections

STRATEGY_NAME = "MultiWorkerMirroredStrategy"
COMMUNICATION = "ring"  # what MWMS's AUTO picks on CPU; set explicitly so the manifest says what ran
CLUSTER_CHECK_NAME = ".edgefm-cluster-check.json"
#: TensorFlow errors that mean "a peer is gone" once the cluster has formed (measured: a killed
#: worker makes its peers fail ~5 s later with UnavailableError "Connection reset by peer").
PEER_ERRORS = (tf.errors.UnavailableError, tf.errors.DeadlineExceededError, tf.errors.CancelledError,
               tf.errors.AbortedError, tf.errors.InternalError, tf.errors.UnknownError)


class OneProcess:
    """The strategy-free case: this process holds the model and sees every sample of each batch."""

    workers = 1
    rank = 0
    is_chief = True

    def scope(self) -> contextlib.AbstractContextManager[Any]:
        """Where the model's variables are created."""
        return contextlib.nullcontext()

    def shard(self, batch: tf.Tensor) -> tf.Tensor:
        """This process's part of a global batch: all of it."""
        return batch

    def run(self, step: Callable[..., Any], *args: Any) -> Any:
        return step(*args)

    def mean_loss(self, per_example: tf.Tensor, global_batch: tf.Tensor) -> tf.Tensor:
        return tf.reduce_mean(per_example)

    def sum_gradients(self, grads: list[tf.Tensor]) -> list[tf.Tensor]:
        return grads

    def total(self, value: tf.Tensor) -> tf.Tensor:
        """``value`` summed over the workers (graph code, outside ``run``)."""
        return value

    def record(self) -> dict[str, Any] | None:
        """The manifest's ``training.cluster``; ``None``: one process."""
        return None

    def describe(self, batch_size: int) -> str | None:
        """The progress line's cluster clause; ``None``: one process."""
        return None

    def close(self) -> None:
        pass


ONE_PROCESS = OneProcess()


class Workers(OneProcess):
    """The workers of a ``MultiWorkerMirroredStrategy``; this process is one of them."""

    def __init__(self, strategy: tf.distribute.Strategy, cluster: ClusterSpec) -> None:
        self.strategy = strategy
        self.cluster = cluster
        self.workers = cluster.workers
        self.rank = cluster.rank
        self.is_chief = cluster.is_chief

    @contextlib.contextmanager
    def scope(self) -> Iterator[None]:
        """Variables made here are mirrored on every worker, string variables excepted (see the module doc)."""

        def strings_unmirrored(next_creator: Callable[..., Any], **kwargs: Any) -> Any:
            if _dtype_of(kwargs) == tf.string:
                return ResourceVariable(**kwargs)
            return next_creator(**kwargs)

        with self.strategy.scope(), tf.variable_creator_scope(strings_unmirrored):
            yield

    def shard(self, batch: tf.Tensor) -> tf.Tensor:
        """Rows ``[rank*B//W, (rank+1)*B//W)`` of a global batch of B: every row on exactly one worker."""
        size = tf.shape(batch)[0]
        return batch[size * self.rank // self.workers : size * (self.rank + 1) // self.workers]

    def run(self, step: Callable[..., Any], *args: Any) -> Any:
        return self.strategy.run(step, args=args)

    def mean_loss(self, per_example: tf.Tensor, global_batch: tf.Tensor) -> tf.Tensor:
        # Each worker's share of the global mean: summed over workers, the gradients are the mean's.
        return tf.reduce_sum(per_example) / tf.cast(global_batch, per_example.dtype)

    def sum_gradients(self, grads: list[tf.Tensor]) -> list[tf.Tensor]:
        return tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, grads)

    def total(self, value: tf.Tensor) -> tf.Tensor:
        return self.strategy.reduce(tf.distribute.ReduceOp.SUM, value, axis=None)

    def record(self) -> dict[str, Any]:
        return {
            "workers": self.workers,
            "strategy": STRATEGY_NAME,
            "communication": COMMUNICATION,
            "addresses": list(self.cluster.addresses),
        }

    def describe(self, batch_size: int) -> str:
        share = batch_size // self.workers
        per = f"{share}" if batch_size % self.workers == 0 else f"{share}-{share + 1}"
        return (f"on {self.workers} workers ({STRATEGY_NAME}, {COMMUNICATION} all-reduce), global batch "
                f"{batch_size} ({per} per worker)")

    def gather(self, row: list[int]) -> list[list[int]]:
        """Every worker's ``row`` of int64s, in rank order (one all-gather; all workers must call it)."""
        local = tf.constant([row], tf.int64)
        gathered = self.strategy.run(
            lambda x: tf.distribute.get_replica_context().all_gather(x, axis=0), args=(local,))
        return self.strategy.experimental_local_results(gathered)[0].numpy().tolist()


def _dtype_of(kwargs: Mapping[str, Any]) -> tf.DType:
    if kwargs.get("dtype") is not None:
        return tf.as_dtype(kwargs["dtype"])
    value = kwargs.get("initial_value")
    value = value() if callable(value) else value
    return tf.as_dtype(getattr(value, "dtype", None) or tf.convert_to_tensor(value).dtype)


# -- forming the cluster ------------------------------------------------------------------------------


def join_cluster(cluster: ClusterSpec, *, connect_timeout: float, root: Path,
                 agreed: Mapping[str, Any]) -> Workers:
    """Create the strategy (``TF_CONFIG`` is already in the environment), then check the cluster.

    Checks, all workers together: every peer came up within ``connect_timeout``;
    the options and data in ``agreed`` are the same everywhere; ``root`` (``--artifacts``)
    is one shared directory. Each failure is a ``ClusterError`` on every worker.
    """
    watchdog = _ConnectWatchdog(cluster, connect_timeout)
    watchdog.start()
    try:
        strategy = tf.distribute.MultiWorkerMirroredStrategy(
            communication_options=tf.distribute.experimental.CommunicationOptions(
                implementation=tf.distribute.experimental.CommunicationImplementation.RING))
        workers = Workers(strategy, cluster)
        _check_same_options(workers, agreed)
        _check_shared_storage(workers, root)
    finally:
        watchdog.cancel()
    return workers


class _ConnectWatchdog:
    """Ends the process if the cluster has not formed within the timeout, naming the peers that are not up.

    Forming the cluster blocks inside TensorFlow's C++ (measured: a worker whose peer never
    starts waits there for good, and SIGTERM does not end it), where no Python exception can
    reach the main thread. So the watchdog thread prints the one-paragraph error the CLI would
    print and ends the process itself; nothing has been written yet.
    """

    def __init__(self, cluster: ClusterSpec, timeout: float) -> None:
        self.cluster = cluster
        self.timeout = timeout
        self._timer = threading.Timer(timeout, self._fire)
        self._timer.daemon = True

    def start(self) -> None:
        self._timer.start()

    def cancel(self) -> None:
        self._timer.cancel()

    def _fire(self) -> None:
        down = [(r, a) for r, a in self.cluster.peers() if not accepts_connections(a)]
        who = down or self.cluster.peers()
        names = ", ".join(f"worker {r} at {a}" for r, a in who)
        why = "nothing accepts connections there" if down else "it accepts connections but did not join"
        message = (
            f"{names} did not come up within {self.timeout:g} s ({why}); this worker ({self.cluster.address}, "
            f"rank {self.cluster.rank} of {self.cluster.workers}) stops. Start `edgefm train --distribute` with the same "
            "options on every address TF_CONFIG lists, check the addresses and firewalls, or raise --connect-timeout."
        )
        sys.stderr.write("error: " + message + "\n")
        sys.stderr.flush()
        os._exit(ClusterError.exit_code)


def fingerprint(value: Any) -> int:
    """A 62-bit digest of ``value``'s ``repr``: equal options give equal numbers on every machine."""
    return int.from_bytes(hashlib.sha256(repr(value).encode()).digest()[:8], "big") >> 2


def _check_same_options(workers: Workers, agreed: Mapping[str, Any]) -> None:
    names = list(agreed)
    rows = workers.gather([fingerprint(agreed[n]) for n in names])
    differ = [n for i, n in enumerate(names) if len({row[i] for row in rows}) > 1]
    if differ:
        odd = [r for r, row in enumerate(rows) if row != rows[0]]
        raise ClusterError(
            f"The {workers.workers} workers were started with different {', '.join(differ)} (workers "
            f"{', '.join(map(str, odd))} differ from the chief, worker 0); here: "
            + ", ".join(f"{n} {agreed[n]!r}" for n in differ)
            + ". Start every worker with the same options and the same dataset."
        )


def _check_shared_storage(workers: Workers, root: Path) -> None:
    """The chief writes a random token into ``root``; every worker must read it back there."""
    path = root / CLUSTER_CHECK_NAME
    token = secrets.randbits(62) if workers.is_chief else 0
    if workers.is_chief:
        atomic_write_json(path, {"token": token})
    chief_token = workers.gather([token])[0][0]
    seen = True
    if not workers.is_chief:
        try:
            import json

            seen = json.loads(path.read_text()).get("token") == chief_token
        except (OSError, ValueError, AttributeError):
            seen = False
    flags = workers.gather([int(seen)])
    if workers.is_chief:
        path.unlink(missing_ok=True)
    blind = [r for r, (f,) in enumerate(flags) if not f]
    if blind:
        raise ClusterError(
            f"--artifacts {root} is not shared storage: worker(s) {', '.join(map(str, blind))} do not see the file the "
            f"chief wrote there. Across machines --artifacts must be one directory every worker mounts (NFS, a "
            "cloud bucket mount): the chief writes the checkpoints there and every worker resumes from them."
        )


def lost_peer_error(e: Exception, workers: int, epoch: int, ckpt_dir: Path, root: Path) -> WorkerLostError:
    """The message for a peer that died mid-run (``e``: TensorFlow's error on this worker)."""
    reason = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
    return WorkerLostError(
        f"Training on {workers} workers stopped during epoch {epoch + 1}: a peer died or became unreachable "
        f"({type(e).__name__}: {reason}). MultiWorkerMirroredStrategy cannot continue with fewer workers; the last "
        f"completed epoch's checkpoint is kept in {ckpt_dir} and no manifest claims a finished run. Restart every "
        f"worker with `edgefm train --distribute --resume --artifacts {root}` (same options); `edgefm train --workers N` "
        "does this by itself."
    )
