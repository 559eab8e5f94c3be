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

REPO = Path(__file__).resolve().parents[3]

_DURING_TRACING = """
import json, os, signal, sys
from edgefm.core.quiet import import_tensorflow
from edgefm.core.interrupts import interrupts_noted

tf = import_tensorflow()
results = {}
for signals in (1, 2):
    traced, after = [], []
    with interrupts_noted() as seen:
        try:
            @tf.function
            def step(x):
                for _ in range(signals):  # the handler runs here, inside TensorFlow's tracing
                    os.kill(os.getpid(), signal.SIGTERM)
                for _ in range(20):
                    x = x * 2.0 + 1.0
                traced.append(True)
                return x
            step(tf.constant(1.0))
            after.append(True)
        except KeyboardInterrupt:
            pass
    results[signals] = {"seen": seen, "traced": traced, "after": after, "tracing_left_on": sys.gettrace() is not None}
print(json.dumps(results))
"""


def _run(code: str, *args: str) -> dict:
    res = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_a_signal_during_tracing_is_raised_when_tensorflow_returns_and_a_second_one_at_once() -> None:
    results = _run(_DURING_TRACING)
    one = results["1"]
    # the trace finished, and the interrupt came before the caller's next line ran
    assert one == {"seen": ["SIGTERM"], "traced": [True], "after": [], "tracing_left_on": False}
    two = results["2"]
    # a second signal while the first waits is raised where it lands: a call that never returns stays stoppable
    assert two == {"seen": ["SIGTERM", "SIGTERM"], "traced": [], "after": [], "tracing_left_on": False}


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
    (tmp_path / "halfway.py").write_text(
        "import os, signal\nos.kill(os.getpid(), signal.SIGINT)\nVALUES = [i * i for i in range(1000)]\nCOMPLETE = True\n"
    )
    out = _run(_DURING_IMPORT, str(tmp_path))
    # the module body ran to its end (not left half-initialised in sys.modules); the importer got the interrupt
    assert out == {"complete": True, "loop": "interrupted", "seen": ["SIGINT", "SIGINT"]}
