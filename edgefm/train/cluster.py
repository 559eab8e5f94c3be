"""The cluster a distributed run trains on, read from ``TF_CONFIG`` (no TensorFlow here).

``TF_CONFIG`` is the variable every launcher of ``tf.distribute.MultiWorkerMirroredStrategy``
writes (Kubernetes operators, Ray Train's ``TensorflowTrainer``, ``edgefm train --workers``):
``{"cluster": {"worker": ["host:port", ...]}, "task": {"type": "worker", "index": i}}``,
optionally with one ``"chief"`` task. It is parsed here, before TensorFlow is imported,
so a malformed one is a one-paragraph error naming the variable, not a traceback from
TensorFlow's resolver.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass

from edgefm.core.errors import ConfigError, EdgefmError

TF_CONFIG = "TF_CONFIG"
#: The task types edgefm trains with: MWMS's chief (optional) and its workers.
TRAINING_JOBS = ("chief", "worker")
EXAMPLE = '{"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}}'


class ClusterError(EdgefmError):
    """A cluster that cannot train: a worker that never came up, options that differ, storage not shared."""


class WorkerLostError(ClusterError):
    """A peer died or became unreachable mid-run. Retryable: restart every worker with ``--resume``.

    Exit status 75 (EX_TEMPFAIL), which ``edgefm train --workers`` reads as "restart".
    """

    exit_code = 75


@dataclass(frozen=True)
class ClusterSpec:
    """The training tasks in MWMS's order (the chief, if any, first) and which one this process is."""

    addresses: tuple[str, ...]
    rank: int  # this task's position in ``addresses``; 0 is the chief
    task_type: str
    task_index: int

    @property
    def workers(self) -> int:
        return len(self.addresses)

    @property
    def is_chief(self) -> bool:
        return self.rank == 0

    @property
    def address(self) -> str:
        return self.addresses[self.rank]

    def peers(self) -> list[tuple[int, str]]:
        """(rank, address) of every other task."""
        return [(r, a) for r, a in enumerate(self.addresses) if r != self.rank]

    @staticmethod
    def from_environment(environ: Mapping[str, str] | None = None) -> ClusterSpec:
        """Parse ``TF_CONFIG`` from ``environ`` (default: this process's environment)."""
        raw = (os.environ if environ is None else environ).get(TF_CONFIG, "")
        if not raw.strip():
            raise ConfigError(
                f"--distribute reads the cluster from the {TF_CONFIG} environment variable, which is not set. "
                f"Set it on every machine (the task index differs), e.g. {TF_CONFIG}='{EXAMPLE}', or use "
                "--workers N to start N workers on this machine."
            )
        return parse_tf_config(raw)


def parse_tf_config(raw: str) -> ClusterSpec:
    """The ``ClusterSpec`` of a ``TF_CONFIG`` JSON string; a ``ConfigError`` naming what is wrong."""

    def bad(what: str) -> ConfigError:
        return ConfigError(f"{TF_CONFIG} (used by --distribute) {what}. Expected the form {EXAMPLE}.")

    try:
        conf = json.loads(raw)
    except ValueError as e:
        raise bad(f"is not valid JSON ({e})") from e
    if not isinstance(conf, dict):
        raise bad(f"is a JSON {type(conf).__name__}, not an object")
    cluster, task = conf.get("cluster"), conf.get("task")
    if not isinstance(cluster, dict):
        raise bad('has no "cluster" object')
    others = sorted(set(cluster) - set(TRAINING_JOBS) - {"evaluator"})
    if others:
        raise bad(f"lists jobs {others}; MultiWorkerMirroredStrategy trains with \"chief\" and \"worker\" tasks only "
                  "(ParameterServerStrategy's \"ps\" is asynchronous and not supported)")
    jobs: dict[str, list[str]] = {}
    for job in TRAINING_JOBS:
        addresses = cluster.get(job, [])
        if not isinstance(addresses, list) or not all(isinstance(a, str) for a in addresses):
            raise bad(f'has a "{job}" entry that is not a list of "host:port" strings')
        for a in addresses:
            host, sep, port = a.rpartition(":")
            if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise bad(f'has the address {a!r} in "{job}", which is not "host:port" with a port 1-65535')
        jobs[job] = addresses
    if len(jobs["chief"]) > 1:
        raise bad(f'lists {len(jobs["chief"])} "chief" tasks; there is at most one')
    ordered = tuple(jobs["chief"] + jobs["worker"])
    if not ordered:
        raise bad('lists no "worker" (or "chief") task')
    duplicates = sorted({a for a in ordered if ordered.count(a) > 1})
    if duplicates:
        raise bad(f"lists {duplicates} more than once; every task needs its own host:port")
    if not isinstance(task, dict):
        raise bad('has no "task" object saying which task this process is')
    task_type, index = task.get("type"), task.get("index", 0)
    if task_type == "evaluator":
        raise bad('makes this process an "evaluator"; edgefm evaluates on the chief, so start it as a "worker"')
    if task_type not in TRAINING_JOBS or not jobs[task_type]:
        raise bad(f'has task type {task_type!r}, which is not a job of its "cluster"')
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(jobs[task_type]):
        raise bad(f'has task index {index!r}, but "{task_type}" has {len(jobs[task_type])} task(s) (0-based)')
    rank = index if task_type == "chief" else len(jobs["chief"]) + index
    return ClusterSpec(addresses=ordered, rank=rank, task_type=task_type, task_index=index)


def tf_config(addresses: list[str], rank: int) -> str:
    """The ``TF_CONFIG`` of task ``rank`` of a chief-less cluster of ``addresses`` (what ``--workers`` sets)."""
    return json.dumps({"cluster": {"worker": list(addresses)}, "task": {"type": "worker", "index": rank}})
