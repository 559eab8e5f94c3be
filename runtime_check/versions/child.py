"""The runner inside a pinned runtime's environment: run by that environment's Python, never imported by edgefm.

``python -I child.py MODULE FORMAT MODEL THREADS``. It imports nothing of edgefm
(the environment holds only the runtime and its NumPy), loads the model, writes
one JSON line describing the tensors as stored (``{"ok": true, "inputs": [...],
"outputs": [...]}``) or why it could not (``{"ok": false, "stage": "import" |
"load", "error": ...}``), then serves requests: each stdin line is a directory
holding ``in_<i>.npy`` per input (in the order described); it writes
``out_<i>.npy`` there and answers ``{"ok": true, "seconds": s}`` (the runtime call
alone). The protocol has stdout to itself: the runtime's own printing goes to
stderr (file descriptor 1 is moved to 2 before the runtime is imported).
"""

import importlib
import json
import os
import sys
import time

import numpy as np


def _signature(interp):
    """(input details, output details) by signature name when the file has signatures, else by tensor name."""
    sigs = interp.get_signature_list()
    if sigs:
        key = "serving_default" if "serving_default" in sigs else next(iter(sigs))
        runner = interp.get_signature_runner(key)
        return list(runner.get_input_details().items()), list(runner.get_output_details().items())
    return ([(d["name"], d) for d in interp.get_input_details()], [(d["name"], d) for d in interp.get_output_details()])


def _describe(name, d):
    scale, zero = d.get("quantization", (0.0, 0))
    return {"name": name, "index": int(d["index"]), "dtype": np.dtype(d["dtype"]).name,
            "shape": [int(s) for s in d.get("shape_signature", d["shape"])], "scale": float(scale), "zero_point": int(zero)}


class TFLite:
    def __init__(self, module, path, threads):
        self.interp = module.Interpreter(model_path=path, num_threads=threads)
        try:
            self.interp.allocate_tensors()
        except RuntimeError:
            pass  # a dynamic size fails at its stored 1s; allocated at the first request
        self.inputs, self.outputs = _signature(self.interp)
        self.shapes = None

    def describe(self):
        return [_describe(n, d) for n, d in self.inputs], [_describe(n, d) for n, d in self.outputs]

    def run(self, arrays):
        shapes = [a.shape for a in arrays]
        if shapes != self.shapes:
            for (_, d), a in zip(self.inputs, arrays):
                self.interp.resize_tensor_input(d["index"], list(a.shape), strict=False)
            self.interp.allocate_tensors()
            self.shapes = shapes
        for (_, d), a in zip(self.inputs, arrays):
            self.interp.set_tensor(d["index"], a)
        t0 = time.perf_counter()
        self.interp.invoke()
        seconds = time.perf_counter() - t0
        return [self.interp.get_tensor(d["index"]).copy() for _, d in self.outputs], seconds


class Onnx:
    TYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(double)": "float64",
             "tensor(int8)": "int8", "tensor(uint8)": "uint8", "tensor(int16)": "int16", "tensor(int32)": "int32",
             "tensor(int64)": "int64", "tensor(bool)": "bool"}

    def __init__(self, module, path, threads):
        opts = module.SessionOptions()
        opts.log_severity_level = 3
        if threads:
            opts.intra_op_num_threads = threads
        self.session = module.InferenceSession(path, opts, providers=["CPUExecutionProvider"])

    def describe(self):
        def one(a):
            return {"name": a.name, "dtype": self.TYPES.get(a.type, a.type), "scale": 0.0, "zero_point": 0,
                    "shape": [d if isinstance(d, int) else -1 for d in a.shape]}

        return [one(a) for a in self.session.get_inputs()], [one(a) for a in self.session.get_outputs()]

    def run(self, arrays):
        feeds = {a.name: x for a, x in zip(self.session.get_inputs(), arrays)}
        t0 = time.perf_counter()
        out = self.session.run(None, feeds)
        return out, time.perf_counter() - t0


def _chain(e):
    """The exception and its causes, outermost first: a SystemError from C hides its ImportError cause."""
    parts = []
    while e is not None and len(parts) < 4:
        parts.append(f"{type(e).__name__}: {e}")
        e = e.__cause__ or e.__context__
    return " <- ".join(parts)


def main(argv):
    module_name, fmt, path, threads = argv[1], argv[2], argv[3], int(argv[4]) or None
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)

    def say(obj):
        proto.write(json.dumps(obj) + "\n")
        proto.flush()

    try:
        module = importlib.import_module(module_name)
    except BaseException as e:  # noqa: BLE001 - everything the import raises is the answer
        say({"ok": False, "stage": "import", "error": f"{type(e).__name__}: {e}"})
        return 3
    try:
        model = (TFLite if fmt == "tflite" else Onnx)(module, path, threads)
        inputs, outputs = model.describe()
    except BaseException as e:  # noqa: BLE001
        say({"ok": False, "stage": "load", "error": _chain(e)})
        return 4
    say({"ok": True, "inputs": inputs, "outputs": outputs})
    for line in sys.stdin:
        folder = line.strip()
        if not folder:
            break
        try:
            arrays = [np.load(os.path.join(folder, f"in_{i}.npy")) for i in range(len(inputs))]
            results, seconds = model.run(arrays)
            for i, y in enumerate(results):
                np.save(os.path.join(folder, f"out_{i}.npy"), np.asarray(y))
            say({"ok": True, "seconds": seconds})
        except BaseException as e:  # noqa: BLE001
            say({"ok": False, "stage": "run", "error": f"{type(e).__name__}: {e}"})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
