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
import faulthandler
import hashlib
import json
import os
import secrets
import subprocess
import sys
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
from edgefm.train.cluster import ClusterError, ClusterSpec, WorkerLostError

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
    problems: list[str] = []
    try:
        strategy = tf.distribute.MultiWorkerMirroredStrategy(
            communication_options=tf.distribute.experimental.CommunicationOptions(
                implementation=tf.distribute.experimental.CommunicationImplementation.RING))
        workers = Workers(strategy, cluster)
        # Check everything, then decide: one error with every problem, raised on every worker.
        problems = [p for p in (_check_same_options(workers, agreed), _check_shared_storage(workers, root)) if p]
    except PEER_ERRORS as e:  # e.g. DeadlineExceeded registering with a chief that is not there
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
        problems = [f"This worker ({cluster.address}, rank {cluster.rank} of {cluster.workers}) could not join the "
                    f"cluster ({type(e).__name__}: {reason}). Check that every address TF_CONFIG lists runs `edgefm "
                    "train --distribute` with the same options."]
    finally:
        if watchdog.cancel():
            problems.insert(0, f"The cluster did not form within --connect-timeout {connect_timeout:g} s (see above).")
    if problems:
        raise ClusterError(" ".join(problems))
    return workers


class _ConnectWatchdog:
    """Ends the process if the cluster has not formed within the timeout, naming the peers that are not up.

    Forming the cluster blocks inside TensorFlow's C++ *holding the GIL* (measured on TF 2.21:
    a worker whose peer never starts waits there for good, a Python timer thread never runs,
    and SIGTERM does not end it). So two helpers that need no GIL: a watcher process that, at
    the timeout, probes the peers and prints the one-paragraph error the CLI would print; and
    ``faulthandler``'s C watchdog thread, which ends this process with status 1 a moment later
    (its traceback dump goes to /dev/null). Nothing has been written yet at that point.
    """

    def __init__(self, cluster: ClusterSpec, timeout: float) -> None:
        self.cluster = cluster
        self.timeout = timeout
        self._devnull: Any = None
        self._watcher: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        c = self.cluster
        message = (
            "{names} did not come up within %g s ({why}); this worker (%s, rank %d of %d) stops. Start `edgefm "
            "train --distribute` with the same options on every address TF_CONFIG lists, check the addresses and "
            "firewalls, or raise --connect-timeout." % (self.timeout, c.address, c.rank, c.workers)
        )
        peers = json.dumps(c.peers())
        self._watcher = subprocess.Popen([sys.executable, "-c", _WATCHER, repr(self.timeout), peers, message],
                                         stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
        self._devnull = open(os.devnull, "w")  # held open until cancel()
        faulthandler.dump_traceback_later(self.timeout + 1.0, exit=True, file=self._devnull)

    def cancel(self) -> bool:
        """Stop both helpers; whether the watcher already reported a timeout (then this worker must stop too)."""
        faulthandler.cancel_dump_traceback_later()
        if self._devnull is not None:
            self._devnull.close()
        if self._watcher is None:
            return False
        assert self._watcher.stdin is not None
        self._watcher.stdin.close()  # EOF: the watcher exits quietly unless it already reported
        return self._watcher.wait() == _WATCHER_REPORTED


_WATCHER_REPORTED = 3
# The watcher: sockets only, so it starts in milliseconds and needs nothing from edgefm.
_WATCHER = """
import json, select, socket, sys
timeout, peers, message = float(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3]
if select.select([sys.stdin], [], [], timeout)[0]:
    sys.exit(0)  # the cluster formed (or the worker is gone): the pipe was closed
def up(address):
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=1.0).close()
        return True
    except OSError:
        return False
down = [(r, a) for r, a in peers if not up(a)]
names = ", ".join("worker %d at %s" % (r, a) for r, a in (down or peers))
why = "nothing accepts connections there" if down else "it accepts connections but did not join"
sys.stderr.write("error: " + message.format(names=names, why=why) + "\\n")
sys.stderr.flush()
sys.exit(REPORTED)
""".replace("REPORTED", str(_WATCHER_REPORTED))


def fingerprint(value: Any) -> int:
    """A 62-bit digest of ``value``'s ``repr``: equal options give equal numbers on every machine."""
    return int.from_bytes(hashlib.sha256(repr(value).encode()).digest()[:8], "big") >> 2


def _check_same_options(workers: Workers, agreed: Mapping[str, Any]) -> str | None:
    """What differs between the workers' options or data (``None``: nothing)."""
    names = list(agreed)
    rows = workers.gather([fingerprint(agreed[n]) for n in names])
    differ = [n for i, n in enumerate(names) if len({row[i] for row in rows}) > 1]
    if differ:
        odd = [r for r, row in enumerate(rows) if row != rows[0]]
        return (
            f"The {workers.workers} workers were started with different {', '.join(differ)} (workers "
            f"{', '.join(map(str, odd))} differ from the chief, worker 0); here: "
            + ", ".join(f"{n} {agreed[n]!r}" for n in differ)
            + ". Start every worker with the same options and the same dataset."
        )
    return None


def _check_shared_storage(workers: Workers, root: Path) -> str | None:
    """The chief writes a random token into ``root``; every worker must read it back there."""
    path = root / CLUSTER_CHECK_NAME
    token = secrets.randbits(62) if workers.is_chief else 0
    if workers.is_chief:
        atomic_write_json(path, {"token": token})
    chief_token = workers.gather([token])[0][0]
    seen = True
    if not workers.is_chief:
        try:
            seen = json.loads(path.read_text()).get("token") == chief_token
        except (OSError, ValueError, AttributeError):
            seen = False
    flags = workers.gather([int(seen)])
    if workers.is_chief:
        path.unlink(missing_ok=True)
    blind = [r for r, (f,) in enumerate(flags) if not f]
    if blind:
        return (
            f"--artifacts {root} is not shared storage: worker(s) {', '.join(map(str, blind))} do not see the file the "
            f"chief wrote there. Across machines --artifacts must be one directory every worker mounts (NFS, a "
            "cloud bucket mount): the chief writes the checkpoints there and every worker resumes from them."
        )
    return None


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
