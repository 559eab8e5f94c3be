"""``edgefm train --workers N``: a cluster of N local workers, watched, and restarted after a death.

Each worker is the real ``edgefm train --distribute`` in its own process, with its own
``TF_CONFIG`` naming N free loopback ports, exactly as a Kubernetes operator or Ray would
start it on N machines. MultiWorkerMirroredStrategy has no elastic rejoin (measured: a
killed worker makes its peers fail ~5 s later with ``UnavailableError``), so recovery is
the one that reproduces the uninterrupted run bit for bit: stop every worker, then start
all of them again with ``--resume`` from the chief's last checkpoint, at most
``--max-restarts`` times.

The chief's progress goes to this process's stderr; every worker's stderr is also kept in a
log file (named in the messages) so a failure can say what the worker said.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from edgefm.core.contract import CHECKPOINT_DIRNAME
from edgefm.core.errors import TrainingInterrupted
from edgefm.core.fileio import ensure_directory, outer_tempdir
from edgefm.core.interrupts import interrupts_noted
from edgefm.core.manifest import Manifest
from edgefm.train.cluster import TF_CONFIG, ClusterError, WorkerLostError, tf_config
from edgefm.train.config import TrainConfig
from edgefm.train.progress import EpochStats, TrainReporter

HOST = "127.0.0.1"
POLL_S = 0.2
#: After the first worker fails, how long the others get to fail by themselves (measured: ~5 s
#: for MWMS to notice a dead peer), then to stop on SIGTERM, before SIGKILL. SIGKILL is needed:
#: a worker blocked in TensorFlow's collectives does not end on SIGTERM (measured).
PEER_GRACE_S = 15.0
TERM_GRACE_S = 10.0
#: Exit statuses after which a restart from the checkpoint can succeed: a peer lost (75) or a
#: worker stopped by a signal it handled (130: SIGTERM, e.g. a preempted machine). Killed by a
#: signal (negative status) is retryable too. Anything else (a bad option, a missing dataset) is not.
RETRYABLE = (WorkerLostError.exit_code, TrainingInterrupted.exit_code)


def free_ports(n: int) -> list[int]:
    """``n`` distinct loopback ports that were free a moment ago (the OS picks them; held together so they differ)."""
    socks = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(n)]
    try:
        for s in socks:
            s.bind((HOST, 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def worker_args(cfg: TrainConfig, resume: bool) -> list[str]:
    """The ``edgefm train`` options that make one worker of ``cfg``'s cluster (its model, data and schedule)."""
    args = [
        "--distribute",
        "--model", cfg.model.value,
        "--epochs", str(cfg.epochs),
        "--batch-size", str(cfg.batch_size),
        "--learning-rate", repr(cfg.learning_rate),  # repr: the float round-trips exactly
        "--lr-schedule", cfg.lr_schedule.value,
        "--hidden-units", str(cfg.hidden_units),
        "--seed", str(cfg.seed),
        "--artifacts", str(cfg.artifacts),
        "--connect-timeout", repr(cfg.connect_timeout),
        "--steps-per-call", str(cfg.steps_per_call),
        "--no-jit",
    ]
    if cfg.threads is not None:
        args += ["--threads", str(cfg.threads)]
    if cfg.data_dir is not None:
        args += ["--data-dir", str(cfg.data_dir)]
    if not cfg.verify_data:
        args.append("--no-verify")
    if resume:
        args.append("--resume")
    if cfg.quiet:
        args.append("--quiet")
    return args


@dataclass
class _Worker:
    rank: int
    address: str
    proc: subprocess.Popen[bytes]
    log: Path
    pump: threading.Thread
    code: int | None = None

    def describe_exit(self) -> str:
        if self.code is None:
            return "still running"
        if self.code < 0:
            with contextlib.suppress(ValueError):
                return f"killed by {signal.Signals(-self.code).name}"
            return f"killed by signal {-self.code}"
        return f"exit status {self.code}"

    def last_error(self) -> str:
        """The worker's own one-paragraph error, if it printed one."""
        with contextlib.suppress(OSError):
            lines = self.log.read_text(encoding="utf-8", errors="replace").replace("\r", "\n").splitlines()
            errors = [ln for ln in lines if ln.startswith("error: ")]
            if errors:
                return errors[-1][len("error: "):]
        return ""


@dataclass
class _Attempt:
    """One start of the whole cluster, and how it ended."""

    workers: list[_Worker] = field(default_factory=list)
    first_failure: _Worker | None = None

    @property
    def retryable(self) -> bool:
        w = self.first_failure
        return w is not None and w.code is not None and (w.code < 0 or w.code in RETRYABLE)


def launch(cfg: TrainConfig, reporter: TrainReporter | None = None) -> Any:
    """Run ``cfg`` on ``cfg.workers`` local workers until it finishes; restart all after a death.

    Returns the chief's ``TrainResult`` (read back from its manifest).
    """
    n = cfg.workers
    assert n is not None, "launch() needs TrainConfig.workers"
    root = ensure_directory(cfg.artifacts)
    reporter = reporter or TrainReporter(quiet=cfg.quiet)
    logs = Path(tempfile.mkdtemp(prefix="edgefm-workers-", dir=outer_tempdir()))  # kept when the run fails
    # The workers' $TMPDIR (their private checkpoints, their libraries' files): removed here whatever happens,
    # so a worker killed by SIGKILL leaves nothing behind either. Named after the run for the tests to find.
    run_id = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:12]
    scratch = Path(tempfile.mkdtemp(prefix=f"edgefm-workers-{run_id}-tmp-"))
    try:
        return _launch(cfg, n, root, reporter, logs, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _launch(cfg: TrainConfig, n: int, root: Path, reporter: TrainReporter, logs: Path, scratch: Path) -> Any:
    from edgefm.train.progress import TrainResult

    resume = cfg.resume
    attempt = _Attempt()
    with interrupts_noted() as seen:
        try:
            for restart in range(cfg.max_restarts + 1):
                attempt = _start(cfg, n, resume, logs / f"attempt-{restart}", reporter, scratch)
                _watch(attempt)
                if attempt.first_failure is None:
                    break
                _raise_if_final(cfg, attempt, restart, logs)
                resume = resume or _has_checkpoint(root)
                w = attempt.first_failure
                reporter.note(
                    f"worker {w.rank} ({w.address}) {w.describe_exit()}; restarting all {n} workers "
                    + ("with --resume from the last checkpoint" if resume else "from the start (no checkpoint yet)")
                    + f" (restart {restart + 1} of {cfg.max_restarts})"
                )
        except KeyboardInterrupt:
            _stop(attempt.workers, peer_grace=0.0)
            how = seen[0] if seen else "SIGINT"
            raise TrainingInterrupted(
                f"Training on {n} local workers stopped by {how}; the last completed epoch's checkpoint is kept in "
                f"{root / CHECKPOINT_DIRNAME} and no manifest claims a finished run. Run `edgefm train --workers {n} "
                f"--resume --artifacts {root}` (same options) to finish it. Worker logs: {logs}."
            ) from None
    shutil.rmtree(logs, ignore_errors=True)  # a finished run needs no worker logs; a failed one names them
    manifest = Manifest.load(root)
    history = [EpochStats(**h) for h in manifest.training.get("history", [])]
    return TrainResult(manifest=manifest, history=history)


def _has_checkpoint(root: Path) -> bool:
    return (root / CHECKPOINT_DIRNAME / "checkpoint").is_file()


def _raise_if_final(cfg: TrainConfig, attempt: _Attempt, restart: int, logs: Path) -> None:
    w = attempt.first_failure
    assert w is not None
    said = w.last_error()
    detail = f": {said}" if said else ""
    if not attempt.retryable:
        # The worker's own message says what to do (a bad option, a missing dataset...): pass it on.
        raise ClusterError(f"worker {w.rank} of {cfg.workers} ({w.address}) stopped with {w.describe_exit()}{detail} "
                           f"(worker logs: {logs})")
    if restart >= cfg.max_restarts:
        raise ClusterError(
            f"worker {w.rank} of {cfg.workers} ({w.address}) stopped with {w.describe_exit()}{detail}, and the cluster "
            f"was already restarted {cfg.max_restarts} time(s) (--max-restarts). The last completed epoch's checkpoint "
            f"is kept in {cfg.artifacts / CHECKPOINT_DIRNAME}; fix the cause, then run `edgefm train --workers "
            f"{cfg.workers} --resume` with the same options. Worker logs: {logs}."
        )


def _start(cfg: TrainConfig, n: int, resume: bool, logdir: Path, reporter: TrainReporter, scratch: Path) -> _Attempt:
    """Start the ``n`` workers of one attempt on fresh loopback ports."""
    import edgefm

    logdir.mkdir(parents=True, exist_ok=True)
    addresses = [f"{HOST}:{p}" for p in free_ports(n)]
    # The workers import this very edgefm, installed or not.
    package_root = str(Path(edgefm.__file__).resolve().parents[1])
    path = os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH", "")) if p)
    cmd = [sys.executable, "-m", "edgefm.cli", "train", *worker_args(cfg, resume)]
    reporter.note(f"starting {n} workers on {', '.join(addresses)} (worker logs in {logdir})")
    attempt = _Attempt()
    for rank, address in enumerate(addresses):
        env = {**os.environ, TF_CONFIG: tf_config(addresses, rank), "PYTHONPATH": path, "TMPDIR": str(scratch),
               "GCE_METADATA_IP": os.environ.get("GCE_METADATA_IP", f"{HOST}:0")}
        log = logdir / f"worker-{rank}.log"
        proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
        forward = sys.stderr if rank == 0 and not cfg.quiet else None  # the chief's progress, live
        pump = threading.Thread(target=_pump, args=(proc.stderr, log, forward), daemon=True)
        pump.start()
        attempt.workers.append(_Worker(rank, address, proc, log, pump))
    return attempt


def _pump(pipe: IO[bytes] | None, log: Path, forward: IO[str] | None) -> None:
    """Copy a worker's stderr into its log file (and to ``forward``) as it comes."""
    assert pipe is not None
    with open(log, "wb") as out:
        while chunk := pipe.read1(65536) if hasattr(pipe, "read1") else pipe.read(65536):
            out.write(chunk)
            out.flush()
            if forward is not None:
                forward.write(chunk.decode("utf-8", errors="replace"))
                forward.flush()


def _watch(attempt: _Attempt) -> None:
    """Wait until every worker exits 0, or one fails: then stop the rest (``first_failure`` says who)."""
    while True:
        for w in attempt.workers:
            if w.code is None:
                w.code = w.proc.poll()
                if w.code not in (None, 0) and attempt.first_failure is None:
                    attempt.first_failure = w
        if attempt.first_failure is not None:
            _stop(attempt.workers, peer_grace=PEER_GRACE_S)
            return
        if all(w.code == 0 for w in attempt.workers):
            _finish_pumps(attempt.workers)
            return
        time.sleep(POLL_S)


def _stop(workers: list[_Worker], peer_grace: float) -> None:
    """Let the running workers end by themselves for ``peer_grace`` s, then SIGTERM, then SIGKILL."""
    for grace, sig in ((peer_grace, None), (TERM_GRACE_S, signal.SIGTERM), (0.0, signal.SIGKILL)):
        running = [w for w in workers if w.proc.poll() is None]
        if not running:
            break
        for w in running:
            if sig is not None:
                with contextlib.suppress(ProcessLookupError):
                    w.proc.send_signal(sig)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and any(w.proc.poll() is None for w in running):
            time.sleep(POLL_S)
    for w in workers:
        w.proc.wait()
        if w.code is None:
            w.code = w.proc.returncode
    _finish_pumps(workers)


def _finish_pumps(workers: list[_Worker]) -> None:
    for w in workers:
        w.proc.wait()
        w.pump.join(timeout=5)
        if w.proc.stderr is not None:
            w.proc.stderr.close()
