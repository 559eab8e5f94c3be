"""Training on several workers: real MultiWorkerMirroredStrategy workers on 127.0.0.1, tiny synthetic data.

Every cluster here is real processes on free loopback ports (``edgefm train --workers``
or ``--distribute`` with a hand-written ``TF_CONFIG``); nothing of tf.distribute is mocked.
The one-process and two-worker runs are shared by the module; each cluster test stays
well under a minute.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from edgefm.cli.train_cmd import build_config, train_cmd
from edgefm.core.errors import ConfigError
from edgefm.core.manifest import Manifest
from edgefm.data import fashion_mnist as ds
from edgefm.train.cluster import ClusterSpec, parse_tf_config, tf_config
from edgefm.train.config import TrainConfig
from edgefm.train.launcher import free_ports, worker_args
from edgefm.train.trainer import train

from conftest import REPO, make_idx_dir, run_cli

# 2011 samples at batch 25: 80 full batches split 12/13 between two workers, and a tail of 11 (5/6).
N_TRAIN, BATCH, EPOCHS = 2011, 25, 12
WEIGHTS = ("w1", "b1", "w2", "b2")


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("fmnist-dist")
    make_idx_dir(d, n_train=N_TRAIN, n_test=128, seed=3)
    return d


def _cfg(root: Path, data: Path, **kw) -> TrainConfig:
    base = dict(epochs=EPOCHS, batch_size=BATCH, hidden_units=8, data_dir=data, verify_data=False, quiet=True,
                artifacts=root, connect_timeout=60.0)
    return TrainConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def one_process(tmp_path_factory: pytest.TempPathFactory, data: Path) -> Path:
    root = tmp_path_factory.mktemp("one") / "a"
    train(_cfg(root, data, jit=False))
    return root


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory: pytest.TempPathFactory, data: Path) -> Path:
    root = tmp_path_factory.mktemp("two") / "a"
    result = train(_cfg(root, data, workers=2))  # the launcher: two real worker processes
    assert result.manifest is not None and len(result.history) == EPOCHS
    return root


def _private_checkpoint_dirs(root: Path) -> list[Path]:
    """What the non-chief workers of ``root``'s run left in the temporary directory (nothing, once done)."""
    import hashlib
    import tempfile

    run_id = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:12]
    # the launcher's scratch $TMPDIR for the run's workers (their checkpoints are in private directories inside)
    return list(Path(tempfile.gettempdir()).glob(f"edgefm-workers-{run_id}-tmp-*"))


def _weights(root: Path) -> dict[str, np.ndarray]:
    loaded = tf.saved_model.load(str(root / "saved_model"))
    return {n: getattr(loaded, n).numpy() for n in WEIGHTS}


# -- two workers train the one-process model -----------------------------------------------------------------


def test_two_workers_train_the_one_process_model(one_process: Path, two_workers: Path, data: Path) -> None:
    a, b = _weights(one_process), _weights(two_workers)
    for n in WEIGHTS:
        np.testing.assert_allclose(b[n], a[n], atol=1e-5, rtol=0, err_msg=n)
    sa, sb = (tf.saved_model.load(str(r / "saved_model")) for r in (one_process, two_workers))
    assert sorted(sa.signatures) == sorted(sb.signatures) == ["labels", "serving_default"]
    names = [sm.signatures["labels"]()["class_names"].numpy().tolist() for sm in (sa, sb)]
    assert names[0] == names[1] and names[0][7] == b"Sneaker"
    test = ds.load_split("test", data, verify=False)
    x = tf.constant(test.scaled())
    la, lb = (sm.signatures["serving_default"](images=x)["logits"].numpy() for sm in (sa, sb))
    np.testing.assert_allclose(lb, la, atol=1e-4, rtol=0)
    ta, tb = Manifest.load(one_process).training, Manifest.load(two_workers).training
    assert ta["test_accuracy"] == tb["test_accuracy"] > 0.5
    assert ta["train_accuracy"] == pytest.approx(tb["train_accuracy"], abs=1e-3)


def test_the_chief_records_the_cluster_and_the_others_write_nothing(one_process: Path, two_workers: Path) -> None:
    t = Manifest.load(two_workers).training
    cluster = t["cluster"]
    assert cluster["workers"] == 2 and cluster["strategy"] == "MultiWorkerMirroredStrategy"
    assert cluster["communication"] == "ring" and len(cluster["addresses"]) == 2
    assert t["jit_compile"] is False and t["batch_size"] == BATCH and len(t["history"]) == EPOCHS
    assert Manifest.load(one_process).training["cluster"] is None
    # The chief's checkpoints and state only; the cluster check file is gone.
    state = json.loads((two_workers / "checkpoints" / "state.json").read_text())
    assert len(state["history"]) == EPOCHS and all(np.isfinite(h["test_loss"]) for h in state["history"])
    assert sorted(p.name for p in two_workers.iterdir() if p.name.startswith(".")) == []
    assert _private_checkpoint_dirs(two_workers) == []


def test_a_two_worker_checkpoint_resumes_in_one_process(tmp_path: Path, two_workers: Path, data: Path) -> None:
    import shutil

    root = tmp_path / "resumed"
    shutil.copytree(two_workers, root)
    t = train(_cfg(root, data, epochs=EPOCHS + 1, resume=True, jit=False)).manifest.training
    assert t["resumed_from_epoch"] == EPOCHS and len(t["history"]) == EPOCHS + 1 and t["cluster"] is None


# -- a worker dies: the launcher restarts all from the checkpoint ----------------------------------------------


def _worker_pids(launcher: int) -> dict[int, int]:
    """rank -> pid of the launcher's worker processes (read from their TF_CONFIG)."""
    out = {}
    for child in Path(f"/proc/{launcher}/task/{launcher}/children").read_text().split():
        try:
            env = Path(f"/proc/{child}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        for item in env:
            if item.startswith(b"TF_CONFIG="):
                out[json.loads(item[len(b"TF_CONFIG="):])["task"]["index"]] = int(child)
    return out


@pytest.mark.slow
def test_killed_worker_restarts_the_cluster_from_the_checkpoint(tmp_path: Path, two_workers: Path, data: Path) -> None:
    root = tmp_path / "killed"
    args = ["train", "--workers", "2", "--epochs", str(EPOCHS), "--batch-size", str(BATCH), "--hidden-units", "8",
            "--data-dir", str(data), "--no-verify", "--artifacts", str(root), "--connect-timeout", "60"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "edgefm.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=REPO, stdin=subprocess.DEVNULL)
    state = root / "checkpoints" / "state.json"
    deadline = time.monotonic() + 120
    while not state.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    pids = _worker_pids(proc.pid)
    assert set(pids) == {0, 1}, pids
    done_before = len(json.loads(state.read_text())["history"])
    assert done_before < EPOCHS, "the run finished before the kill: make it longer"
    os.kill(pids[1], signal.SIGKILL)
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err[-3000:]
    assert "worker 1 (127.0.0.1:" in err and "killed by SIGKILL; restarting all 2 workers with --resume" in err
    assert "Traceback" not in err
    t = Manifest.load(root).training
    assert t["resumed_from_epoch"] >= 1 and len(t["history"]) == EPOCHS
    assert _private_checkpoint_dirs(root) == []  # the SIGKILLed worker's too: its successor replaced it
    # Restarting from the checkpoint reproduces the uninterrupted run bit for bit.
    resumed, straight = _weights(root), _weights(two_workers)
    for n in WEIGHTS:
        np.testing.assert_array_equal(resumed[n], straight[n], err_msg=n)


# -- bad input: each a one-paragraph error, a non-zero exit, no manifest ----------------------------------------


def _spawn(args: list[str], tf_conf: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CONFIG": tf_conf, "GCE_METADATA_IP": "127.0.0.1:0"}
    return subprocess.Popen([sys.executable, "-m", "edgefm.cli", "train", "--distribute", *args], env=env, cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)


def _common(data: Path, root: Path) -> list[str]:
    return ["--epochs", "1", "--batch-size", str(BATCH), "--hidden-units", "8", "--data-dir", str(data),
            "--no-verify", "--artifacts", str(root), "-q"]


def test_the_cnn_trains_on_two_workers(tmp_path: Path, data: Path) -> None:
    """Momentum (a velocity per mirrored variable) and batch norm (moving statistics assigned inside
    strategy.run) work on MWMS. Each worker normalises its own share of the batch, so the CNN is
    close to, not the same as, the one-process model (README); what is checked is that it trains."""
    result = train(_cfg(tmp_path / "cnn", data, model="cnn", epochs=2, workers=2))
    t = result.manifest.training
    assert t["cluster"]["workers"] == 2 and t["momentum"] == 0.9 and len(result.history) == 2
    assert t["test_accuracy"] > 0.5, t  # the synthetic classes are separable
    saved = tf.saved_model.load(str(tmp_path / "cnn" / "saved_model"))
    assert np.abs(saved.m2.numpy()).max() > 0 and np.all(saved.v2.numpy() > 0)


def test_a_peer_that_never_comes_up_is_named_within_the_timeout(tmp_path: Path, data: Path) -> None:
    addresses = [f"127.0.0.1:{p}" for p in free_ports(2)]
    root = tmp_path / "alone"
    t0 = time.monotonic()
    proc = _spawn([*_common(data, root), "--connect-timeout", "3"], tf_config(addresses, 0))
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, err
    assert f"worker 1 at {addresses[1]} did not come up within 3 s" in err and "--connect-timeout" in err
    assert "Traceback" not in err and not (root / "manifest.json").exists()
    assert time.monotonic() - t0 < 90


def test_workers_with_other_options_and_unshared_artifacts_refuse_to_train(tmp_path: Path, data: Path) -> None:
    addresses = [f"127.0.0.1:{p}" for p in free_ports(2)]
    procs = [_spawn([*_common(data, tmp_path / f"art{r}"), "--seed", str(r), "--connect-timeout", "60"],
                    tf_config(addresses, r)) for r in range(2)]
    errs = [p.communicate(timeout=180)[1] for p in procs]
    for p, err in zip(procs, errs):
        assert p.returncode == 1, err
        assert "different seed" in err and "is not shared storage" in err and "Traceback" not in err
    assert not any((tmp_path / f"art{r}" / "manifest.json").exists() for r in range(2))


@pytest.mark.parametrize(
    "raw, message",
    [
        ("{not json", "is not valid JSON"),
        ("[1, 2]", "is a JSON list, not an object"),
        ('{"task": {"type": "worker", "index": 0}}', 'has no "cluster" object'),
        ('{"cluster": {"worker": ["a:1"], "ps": ["b:2"]}, "task": {"type": "worker"}}', "lists jobs ['ps']"),
        ('{"cluster": {"worker": ["a"]}, "task": {"type": "worker", "index": 0}}', "is not \"host:port\""),
        ('{"cluster": {"worker": ["a:1", "a:1"]}, "task": {"type": "worker", "index": 0}}', "more than once"),
        ('{"cluster": {"worker": ["a:1"]}}', 'has no "task" object'),
        ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "chief", "index": 0}}', "task type 'chief'"),
        ('{"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 2}}', "task index 2"),
        ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "evaluator"}}', "evaluates on the chief"),
    ],
)
def test_malformed_tf_config_is_a_config_error(raw: str, message: str) -> None:
    with pytest.raises(ConfigError, match="TF_CONFIG") as e:
        parse_tf_config(raw)
    assert message in str(e.value)


def test_tf_config_with_a_chief_orders_it_first() -> None:
    raw = '{"cluster": {"chief": ["c:1"], "worker": ["w0:1", "w1:1"]}, "task": {"type": "worker", "index": 1}}'
    spec = parse_tf_config(raw)
    assert spec.addresses == ("c:1", "w0:1", "w1:1") and spec.rank == 2 and not spec.is_chief
    assert parse_tf_config(tf_config(["a:1", "b:2"], 0)) == ClusterSpec(("a:1", "b:2"), 0, "worker", 0)
    with pytest.raises(ConfigError, match="TF_CONFIG environment variable, which is not set.*--workers N"):
        ClusterSpec.from_environment({})


def test_bad_tf_config_through_the_cli(tmp_path: Path, tiny_data_session) -> None:
    data, _ = tiny_data_session
    res = run_cli("train", "--distribute", *_common(data, tmp_path / "a"), env={"TF_CONFIG": '{"cluster": 3}'},
                  timeout=120)
    assert res.returncode == 2 and 'error: TF_CONFIG (used by --distribute) has no "cluster" object' in res.stderr
    assert "Traceback" not in res.stderr and not (tmp_path / "a" / "manifest.json").exists()


@pytest.mark.parametrize(
    "kw, message",
    [
        (dict(distribute=True, jit=True), "--jit cannot be combined with --distribute: XLA has no CPU collectives"),
        (dict(workers=2, jit=True), "--jit cannot be combined with --workers"),
        (dict(distribute=True, eager=True), "--eager cannot be combined with --distribute"),
        (dict(distribute=True, workers=2), "Use one of them"),
        (dict(workers=0), "--workers must be a positive integer"),
        (dict(workers=2, max_restarts=-1), "--max-restarts must be a non-negative integer"),
        (dict(distribute=True, connect_timeout=0), "--connect-timeout must be a positive"),
    ],
)
def test_distribution_options_are_checked(kw: dict, message: str) -> None:
    with pytest.raises(ConfigError) as e:
        TrainConfig(**kw)
    assert message in str(e.value)


def test_distributed_runs_default_to_no_xla() -> None:
    assert TrainConfig().jit is True and TrainConfig(distribute=True).jit is False
    assert TrainConfig(workers=2, jit=False).jit is False and TrainConfig(workers=2).distributed


def test_worker_args_parse_back_to_the_same_config(tmp_path: Path) -> None:
    cfg = TrainConfig(model="cnn", epochs=3, batch_size=48, learning_rate=0.1 / 3, hidden_units=7, threads=1, seed=9,
                      data_dir=tmp_path / "d", artifacts=tmp_path / "a", verify_data=False, quiet=True, workers=3,
                      connect_timeout=7.5, steps_per_call=11)
    for resume in (False, True):
        ctx = train_cmd.make_context("train", worker_args(cfg, resume))
        parsed = build_config(**ctx.params)
        assert parsed == replace(cfg, workers=None, distribute=True, resume=resume, max_restarts=3)


def test_free_ports_are_distinct_loopback_ports() -> None:
    ports = free_ports(4)
    assert len(set(ports)) == 4 and all(0 < p < 65536 for p in ports)
