"""Fuzzing the code that reads untrusted bytes: IDX files and model files.

Random and mutated inputs (truncations, bit flips, byte overwrites, chunk
deletions and duplications, junk behind a valid header) of a real IDX file and
of a real tiny ``.tflite`` and ``.onnx`` go through

- ``edgefm.data.fashion_mnist.read_bytes`` + ``parse_idx`` (in this process: pure Python),
- ``runtime_check.runtimes.probe.check_structure`` and ``edgefm.formats.metadata.read_metadata``
  (in a child process: ONNX's parser and checker are C++, and a native crash must
  fail this test, not kill pytest; the mutant being tried is on disk to reproduce it),
- ``runtime_check.runtimes.probe.validate_model_file`` (the subprocess probe), and for
  files it accepts, loading and running them in LiteRT / ONNX Runtime: fewer
  cases, each probe starts a Python process.

Only ``EdgefmError`` may escape. Each test prints how many cases it ran (shown by
``pytest -s`` or ``-rA``), records it with ``record_property`` and puts it in its
assertion messages. The seed is ``EDGEFM_FUZZ_SEED`` (default 0); more cases with
``EDGEFM_FUZZ_SCALE`` (a multiplier, default 1).

Run by hand: ``python tests/test_fuzz.py models SEED COUNT DIR model.tflite model.onnx``.
"""

from __future__ import annotations

import collections
import gzip
import json
import os
import random
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

SEED = int(os.environ.get("EDGEFM_FUZZ_SEED", "0"))
SCALE = max(1, int(os.environ.get("EDGEFM_FUZZ_SCALE", "1")))
IDX_CASES = 3000 * SCALE  # hypothesis examples + seeded mutants of the IDX reader
MODEL_CASES = 1200 * SCALE  # mutants per model format, checked in a child process
PROBE_CASES = 6 * SCALE  # mutants per format through the subprocess probe (~0.5 s each)
HERE = Path(__file__).resolve()


# -- mutations ------------------------------------------------------------------------------------


def mutate(good: bytes, rng: random.Random) -> tuple[str, bytes]:
    """One random mutation of ``good`` and its kind."""
    d = bytearray(good)
    n = len(d)
    kind = rng.choice(("truncate", "bitflip", "overwrite", "header", "delete", "duplicate", "junk-tail", "random"))
    if kind == "truncate":
        d = d[: rng.randrange(0, n)]
    elif kind == "bitflip":
        for _ in range(rng.randint(1, 8)):
            i = rng.randrange(n)
            d[i] ^= 1 << rng.randrange(8)
    elif kind == "overwrite":
        for _ in range(rng.randint(1, 4)):
            i, k = rng.randrange(n), rng.randint(1, 16)
            d[i : i + k] = rng.randbytes(k)
    elif kind == "header":  # where the offsets and lengths that parsers trust live
        for _ in range(rng.randint(1, 6)):
            d[rng.randrange(min(n, 64))] = rng.randrange(256)
    elif kind == "delete":
        i = rng.randrange(n)
        del d[i : i + rng.randint(1, 256)]
    elif kind == "duplicate":
        i = rng.randrange(n)
        chunk = d[i : i + rng.randint(1, 256)]
        d[i:i] = chunk
    elif kind == "junk-tail":  # the real header, then garbage
        keep = rng.randrange(8, max(9, n // 4))
        d = d[:keep] + bytearray(rng.randbytes(rng.randrange(0, 2048)))
    else:
        d = bytearray(rng.randbytes(rng.randrange(0, 4096)))
    return kind, bytes(d)


def mutants(good: bytes, count: int, seed: int) -> Iterator[tuple[str, bytes]]:
    rng = random.Random(seed)
    for _ in range(count):
        yield mutate(good, rng)


# -- IDX (in process) -----------------------------------------------------------------------------


def test_fuzz_idx_parser_random_bytes(record_property: Callable[[str, object], None]) -> None:
    """Hypothesis: arbitrary bytes and arbitrary headers give an array or a DatasetError."""
    from hypothesis import HealthCheck, given, seed, settings
    from hypothesis import strategies as st

    from edgefm.core.errors import DatasetError
    from edgefm.data.fashion_mnist import parse_idx

    outcomes: collections.Counter[str] = collections.Counter()

    @st.composite
    def idx_like(draw: st.DrawFn) -> bytes:
        """A header that is right or nearly right, over a body of the declared size or off by a little."""
        zero = draw(st.sampled_from([0, 0, 0, 1]))
        code = draw(st.sampled_from([8, 8, 8, 9, 0x0D]))
        ndim = draw(st.integers(0, 6))
        dims = draw(st.lists(st.integers(0, 6) | st.integers(0, 2**32 - 1), min_size=ndim, max_size=ndim))
        declared = int(np.prod(dims, dtype=object)) if dims else 0
        size = draw(st.sampled_from([declared, declared - 1, declared + 1]) if declared <= 512 else st.integers(0, 64))
        header = bytes([0, zero, code, ndim]) + b"".join(d.to_bytes(4, "big") for d in dims)
        if draw(st.integers(0, 9)) == 0:  # now and then a header cut short
            header = header[: draw(st.integers(0, len(header)))]
        return header + draw(st.binary(min_size=max(size, 0), max_size=max(size, 0)))

    @seed(SEED)
    @settings(max_examples=IDX_CASES // 2, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(st.binary(max_size=128) | idx_like())
    def one(data: bytes) -> None:
        try:
            out = parse_idx(data, "fuzz.idx")
        except DatasetError:
            outcomes["rejected"] += 1
        else:
            assert out.dtype == np.uint8 and out.size == len(data) - 4 - 4 * out.ndim
            outcomes["parsed"] += 1

    one()
    total = sum(outcomes.values())
    print(f"\nfuzz idx (hypothesis): {total} cases, {dict(outcomes)}")
    record_property("fuzz_cases", total)
    assert total >= IDX_CASES // 4, f"only {total} hypothesis cases ran: {dict(outcomes)}"


def test_fuzz_idx_reader_mutated_files(tmp_path: Path, record_property: Callable[[str, object], None]) -> None:
    """Seeded mutants of a real IDX file, plain and gzipped, through read_bytes + parse_idx."""
    from edgefm.core.errors import DatasetError
    from edgefm.data.fashion_mnist import parse_idx, read_bytes

    rng = np.random.default_rng(SEED)
    arr = rng.integers(0, 256, size=(7, 28, 28), dtype=np.uint8)
    raw = bytes([0, 0, 8, 3]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape) + arr.tobytes()
    packed = gzip.compress(raw, mtime=0)
    outcomes: collections.Counter[str] = collections.Counter()
    failures: list[str] = []
    for good, name in ((raw, "images-idx3-ubyte"), (packed, "images-idx3-ubyte.gz")):
        path = tmp_path / name
        for i, (kind, data) in enumerate(mutants(good, IDX_CASES // 2, SEED + len(name))):
            path.write_bytes(data)
            try:
                out = parse_idx(read_bytes(path), path)
                outcomes["parsed"] += 1
                assert out.dtype == np.uint8
            except DatasetError as e:
                outcomes["rejected"] += 1
                assert str(path) in str(e)
            except Exception as e:  # noqa: BLE001 - the point of the test
                failures.append(f"{name} mutant {i} ({kind}): {type(e).__name__}: {e}")
                shutil.copyfile(path, tmp_path / f"failure-{len(failures)}-{name}")
    total = sum(outcomes.values()) + len(failures)
    print(f"\nfuzz idx (mutated files): {total} cases, {dict(outcomes)}, {len(failures)} failures")
    record_property("fuzz_cases", total)
    assert not failures, f"{len(failures)} of {total} mutants raised something other than DatasetError: {failures[:5]}"
    assert total == IDX_CASES - IDX_CASES % 2 and outcomes["rejected"] > 0


# -- model files (child processes) ----------------------------------------------------------------


def fuzz_models(seed: int, count: int, workdir: Path, sources: list[Path]) -> dict[str, object]:
    """check_structure and read_metadata on ``count`` mutants of each source; only EdgefmError may escape."""
    from edgefm.core.errors import EdgefmError
    from edgefm.formats.metadata import read_metadata
    from runtime_check.runtimes.probe import check_structure

    outcomes: dict[str, collections.Counter[str]] = {}
    failures: list[str] = []
    for src in sources:
        good = src.read_bytes()
        path = workdir / f"mutant{src.suffix}"  # left on disk if the process dies on it
        counts = outcomes.setdefault(src.suffix, collections.Counter())
        for i, (kind, data) in enumerate(mutants(good, count, seed + len(good))):
            path.write_bytes(data)
            for check in (check_structure, read_metadata):
                try:
                    check(path)
                    counts[f"{check.__name__} accepted"] += 1
                except EdgefmError as e:
                    counts[f"{check.__name__} rejected"] += 1
                    assert str(path) in str(e) or path.name in str(e), str(e)
                except Exception as e:  # noqa: BLE001 - the point of the test
                    failures.append(f"{src.name} mutant {i} ({kind}) {check.__name__}: {type(e).__name__}: {e}")
                    shutil.copyfile(path, workdir / f"failure-{len(failures)}{src.suffix}")
    cases = sum(sum(c.values()) for c in outcomes.values()) + len(failures)
    return {"cases": cases, "outcomes": {k: dict(v) for k, v in outcomes.items()}, "failures": failures}


def fuzz_probe(seed: int, count: int, workdir: Path, sources: list[Path]) -> dict[str, object]:
    """Mutants that pass check_structure, through the subprocess probe; accepted ones are then loaded and run."""
    from edgefm.core.errors import EdgefmError
    from runtime_check.runtimes.probe import check_structure, validate_model_file
    from runtime_check.runtimes.registry import runtime_for
    from runtime_check.tools.predict import run_model

    outcomes: collections.Counter[str] = collections.Counter()
    failures: list[str] = []
    for src in sources:
        good = src.read_bytes()
        picked = 0
        for i, (kind, data) in enumerate(mutants(good, 50 * count, seed + 1 + len(good))):
            if picked == count:
                break
            path = workdir / f"probe{i}{src.suffix}"
            path.write_bytes(data)
            try:
                check_structure(path)
            except EdgefmError:
                path.unlink()
                continue
            picked += 1
            try:
                validate_model_file(path)
            except EdgefmError as e:
                outcomes["probe crashed, reported" if "crashed the runtime" in str(e) else "probe rejected"] += 1
                path.unlink()
                continue
            except Exception as e:  # noqa: BLE001
                failures.append(f"{src.name} mutant {i} ({kind}) validate_model_file: {type(e).__name__}: {e}")
                continue
            try:  # validated: the runtime may load it in this very process
                with runtime_for(path) as runtime:
                    run_model(runtime, np.zeros((2, 28, 28), np.float32))
                outcomes["validated, ran"] += 1
            except EdgefmError:
                outcomes["validated, refused to run"] += 1
            except Exception as e:  # noqa: BLE001
                failures.append(f"{src.name} mutant {i} ({kind}) run: {type(e).__name__}: {e}")
                continue
            path.unlink()
    return {"cases": sum(outcomes.values()) + len(failures), "outcomes": dict(outcomes), "failures": failures}


def _run_child(mode: str, count: int, workdir: Path, sources: list[Path]) -> dict[str, object]:
    proc = subprocess.run(
        [sys.executable, str(HERE), mode, str(SEED), str(count), str(workdir), *map(str, sources)],
        capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL,
    )
    left = sorted(p.name for p in workdir.iterdir())
    assert proc.returncode == 0, (
        f"the {mode} fuzz process died (exit {proc.returncode}; negative: killed by a signal) on the mutant "
        f"left in {workdir} ({left}):\n{proc.stderr[-3000:]}"
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def model_files(tiny_artifacts: Path, tiny_data_session: tuple[Path, dict[str, str]],
                tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """A real tiny float32 .tflite and .onnx (the session's untrained MLP, exported)."""
    from edgefm.core.manifest import Manifest
    from export.config import ExportConfig
    from export.pipeline import export

    root = tmp_path_factory.mktemp("fuzz") / "artifacts"
    shutil.copytree(tiny_artifacts, root)
    cfg = ExportConfig(artifacts=root, format="all", quantize="none", data_dir=tiny_data_session[0],
                       verify_data=False)
    export(Manifest.load(root), cfg)
    return [root / "model_float32.tflite", root / "model.onnx"]


def test_fuzz_model_file_validation(model_files: list[Path], tmp_path: Path,
                                    record_property: Callable[[str, object], None]) -> None:
    summary = _run_child("models", MODEL_CASES, tmp_path, model_files)
    cases, failures = summary["cases"], summary["failures"]
    print(f"\nfuzz model files: {cases} calls on {2 * MODEL_CASES} mutants: {summary['outcomes']}")
    record_property("fuzz_cases", cases)
    assert not failures, f"{len(failures)} of {cases} calls raised something other than EdgefmError: {failures[:5]}"
    assert cases == 4 * MODEL_CASES, f"ran {cases} calls, expected {4 * MODEL_CASES}"
    for suffix, counts in summary["outcomes"].items():  # the mutants reached both outcomes of each check
        assert counts.get("check_structure rejected") and counts.get("check_structure accepted"), (suffix, counts)


def test_fuzz_subprocess_probe_and_runtimes(model_files: list[Path], tmp_path: Path,
                                            record_property: Callable[[str, object], None]) -> None:
    summary = _run_child("probe", PROBE_CASES, tmp_path, model_files)
    cases, failures = summary["cases"], summary["failures"]
    print(f"\nfuzz probe: {cases} mutants that pass check_structure: {summary['outcomes']}")
    record_property("fuzz_cases", cases)
    assert not failures, f"{len(failures)} of {cases} probe cases failed: {failures[:5]}"
    assert cases == 2 * PROBE_CASES, f"ran {cases} probe cases ({summary['outcomes']}), expected {2 * PROBE_CASES}"


if __name__ == "__main__":  # the child processes of the model-file tests
    sys.path.insert(0, str(HERE.parents[1]))
    mode, seed, count, workdir, *sources = sys.argv[1:]
    run = {"models": fuzz_models, "probe": fuzz_probe}[mode]
    result = run(int(seed), int(count), Path(workdir), [Path(s) for s in sources])
    print(json.dumps(result))
