"""Where SIGINT/SIGTERM become KeyboardInterrupt: never inside TensorFlow or an import, but when they return.

Each case runs in its own interpreter with real signals (``os.kill`` to itself) and real TensorFlow
tracing: the failure this guards against was a SIGTERM raised inside TensorFlow's tracing, which
segfaulted, raised SystemError out of ``_pywrap_utils.Flatten`` or hung (CI, test_hardening's
``test_a_new_run_drops_the_previous_runs_checkpoints``).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import REPO

_DURING_TENSORFLOW = """
import json, os, signal, sys, threading, time
from edgefm.core.quiet import import_tensorflow
from edgefm.core.interrupts import interrupts_noted

tf = import_tensorflow()
log = []
lock = threading.Lock()


def traced_step(signals):
    @tf.function
    def step(x):
        for _ in range(signals):  # the handler runs here, inside TensorFlow's tracing
            os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(20):
            x = x * 2.0 + 1.0
        log.append("traced")
        return x
    return step


def call_then_more():
    traced_step(1)(tf.constant(1.0))
    log.append("the caller's next line ran")


def two_signals():
    traced_step(2)(tf.constant(1.0))


def ends_a_try_body():
    try:
        traced_step(1)(tf.constant(1.0))
    finally:
        log.append("finally ran")


def ends_a_with_body():
    with lock:
        traced_step(1)(tf.constant(1.0))


consumed = threading.Event()


def items():
    yield from range(3)
    consumed.wait(60)
    time.sleep(0.1)  # the main thread now waits in the __next__ that ends the loop
    os.kill(os.getpid(), signal.SIGTERM)  # from tf.data's thread
    time.sleep(0.2)


def ends_a_for_loop():
    for x in tf.data.Dataset.from_generator(items, output_signature=tf.TensorSpec([], tf.int64)):
        if x == 2:
            consumed.set()
    log.append("the loop ended")


with interrupts_noted() as seen:
    for case in (call_then_more, two_signals, ends_a_try_body, ends_a_with_body, ends_a_for_loop):
        try:
            case()
            log.append(case.__name__ + " returned")
        except KeyboardInterrupt:
            log.append(case.__name__ + " interrupted")
        log.append({"tracing left on": sys.gettrace() is not None, "lock held": lock.locked()})
print(json.dumps({"log": log, "seen": seen}))
"""


def _run(code: str, *args: str) -> dict:
    res = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_a_signal_inside_tensorflow_ends_the_call_that_entered_it() -> None:
    out = _run(_DURING_TENSORFLOW)
    clean = {"tracing left on": False, "lock held": False}
    assert out["log"] == [
        # the trace finished, and the call ended with the interrupt: the caller's next line did not run
        "traced", "call_then_more interrupted", clean,
        # a second signal while the first waits is raised where it lands: a call that never returns stays stoppable
        "two_signals interrupted", clean,
        # as the call's own exception, the interrupt runs the caller's finally and with-exit (the lock is released) ...
        "traced", "finally ran", "ends_a_try_body interrupted", clean,
        "traced", "ends_a_with_body interrupted", clean,
        # ... and is not discarded with the StopIteration of an iterator's last __next__
        "ends_a_for_loop interrupted", clean,
    ]
    assert out["seen"] == ["SIGTERM"] * 6


_DURING_IMPORT = """
import json, os, signal, sys
from edgefm.core.interrupts import interrupts_noted

sys.path.insert(0, sys.argv[1])
out = {}
with interrupts_noted() as seen:
    try:
        import halfway  # sends itself SIGINT in its first line
        out["after"] = True
    except KeyboardInterrupt:
        out["complete"] = getattr(sys.modules.get("halfway"), "COMPLETE", False)
    import ends_tracing  # its interrupt waits for its import, then its body turns tracing off: that one is lost
    out["after_lost"] = True
    try:
        import halfway_too  # ... and the next signal is a first one again: deferred, not raised inside the import
    except KeyboardInterrupt:
        out["complete_too"] = getattr(sys.modules.get("halfway_too"), "COMPLETE", False)
    try:
        os.kill(os.getpid(), signal.SIGINT)
        n = 0
        while n < 10**9:  # plain code: interrupted where it runs, not deferred
            n += 1
        out["loop"] = "ran to the end"
    except KeyboardInterrupt:
        out["loop"] = "interrupted"
out["seen"] = seen
print(json.dumps(out))
"""


def test_a_signal_during_import_lets_the_module_finish_and_plain_code_is_interrupted_at_once(tmp_path: Path) -> None:
    body = "import os, signal\nos.kill(os.getpid(), signal.SIGINT)\nVALUES = [i * i for i in range(1000)]\nCOMPLETE = True\n"
    for name in ("halfway", "halfway_too"):
        (tmp_path / f"{name}.py").write_text(body)
    (tmp_path / "ends_tracing.py").write_text("import sys\n" + body + "sys.settrace(None)\n")
    out = _run(_DURING_IMPORT, str(tmp_path))
    # the module body ran to its end (not left half-initialised in sys.modules); the importer got the interrupt
    assert out == {"complete": True, "after_lost": True, "complete_too": True, "loop": "interrupted",
                   "seen": ["SIGINT"] * 4}
