"""Every intermediate tensor of a model, on the same inputs, in its own runtime.

A ``Tap`` describes a model as a graph of named tensors (``Node``: producer op, the
tensors it reads, its quantization) and runs a batch returning the value of every
floating (or quantized) tensor it taps. Three taps, one per side:

* ``TensorFlowTap``: the SavedModel's ``serving_default`` concrete function, frozen
  (``convert_variables_to_constants_v2``), re-imported in a ``tf.compat.v1.wrap_function``
  and pruned to return every op output at once;
* ``LiteRTTap``: ``Interpreter(..., experimental_preserve_all_tensors=True)``, then
  ``get_tensor`` of every op's output after ``invoke`` (without the flag LiteRT reuses the
  arena and intermediate values are garbage);
* ``OnnxTap``: every node output appended to ``graph.output`` of an in-memory copy (the
  file on disk is never changed), so ONNX Runtime returns them all.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgefm.core.contract import SERVING_SIGNATURE
from edgefm.core.errors import ModelFileError
from edgefm.formats.layers import name_key  # noqa: F401 - re-exported: explain's modules and tests use it from here

#: TF ops whose outputs are no layer: constants, copies, control
NOT_LAYERS = {"Const", "Identity", "IdentityN", "NoOp", "Placeholder", "ReadVariableOp", "StopGradient"}


@dataclass
class Node:
    """One tensor of a graph: its producer op, the tensors that op reads, its quantization."""

    name: str
    op: str
    inputs: list[str]
    shape: list[int] = field(default_factory=list)
    dtype: str = "float32"
    #: (scale, zero_point) of a quantized tensor (one scale; per-channel tensors are weights, not tapped)
    quant: tuple[float, int] | None = None
    #: the signature output (or input) it is, if any
    signature: str | None = None
    order: int = 0


class Tap:
    """A model's tensors (``nodes``, in graph order) and ``run(feeds)`` -> every tapped tensor's value."""

    nodes: dict[str, Node]
    #: tensors may be channels-first where TF's are channels-last (tf2onnx); LiteRT keeps TF's NHWC
    channels_first: bool = False
    #: tensor -> True when it is known to be channels-first, False when known channels-last (absent: unknown)
    layout: dict[str, bool]

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def close(self) -> None:
        """Release the runtime."""

    def consumers(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {n: [] for n in self.nodes}
        for node in self.nodes.values():
            for i in node.inputs:
                if i in out:
                    out[i].append(node.name)
        return out


# -- TensorFlow ---------------------------------------------------------------------------------


class TensorFlowTap(Tap):
    def __init__(self, path: Path) -> None:
        from edgefm.core.quiet import import_tensorflow, quiet_native_output

        with quiet_native_output():
            tf = import_tensorflow()
            # imported here, after import_tensorflow: importing any tensorflow module first loads TF's C++
            # runtime with its logging on, which printed absl's and oneDNN's start-up lines under `verify --explain`
            from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2
            try:
                # kept: the signature's variables die with the loaded object (convert_variables_to_constants_v2
                # then asserts "Called a function referencing variables which have been deleted")
                self._loaded = tf.saved_model.load(str(path))
                fn = self._loaded.signatures[SERVING_SIGNATURE]
            except (KeyError, OSError, ValueError) as e:
                raise ModelFileError(f"TensorFlow could not load the {SERVING_SIGNATURE!r} signature of {path}: {e}. "
                                     "Re-create the SavedModel (`edgefm train`, or `edgefm export --saved-model`).") from e
            try:
                frozen = convert_variables_to_constants_v2(fn)
            except Exception as e:
                raise ModelFileError(f"--explain: TensorFlow could not freeze the {SERVING_SIGNATURE!r} signature of "
                                     f"{path} into one graph ({type(e).__name__}: {e}); its intermediate tensors "
                                     "cannot be compared.") from e
        graph_def = frozen.graph.as_graph_def()
        _, in_specs = fn.structured_input_signature
        # frozen.inputs follow the flattened (sorted) keyword signature; structured_outputs name frozen.outputs
        in_names = [t.name for t in frozen.inputs]
        self.input_of = dict(zip(sorted(in_specs), in_names))
        # the frozen function's outputs are a flat list, in tf.nest order of the signature's output dict
        outs = fn.structured_outputs
        keys = tf.nest.flatten({k: k for k in outs}) if isinstance(outs, Mapping) else []
        out_names = {k: t.name for k, t in zip(keys, frozen.outputs)}
        wrapped = tf.compat.v1.wrap_function(lambda: tf.graph_util.import_graph_def(graph_def, name=""), [])
        graph = wrapped.graph
        self.nodes = {}
        order = 0
        for op in graph.get_operations():
            for t in op.outputs:
                if not t.dtype.is_floating:
                    continue
                node = Node(t.name, op.type, [i.name for i in op.inputs],
                            [-1 if d is None else int(d) for d in (t.shape.as_list() if t.shape.rank is not None else [])],
                            t.dtype.name, order=order)
                order += 1
                self.nodes[t.name] = node
        for key, name in self.input_of.items():
            if name in self.nodes:
                self.nodes[name].signature = key
        # a signature output is an Identity chain's end: name the layer that computes it
        for key, name in out_names.items():
            src = self._through_identities(name)
            if src in self.nodes:
                self.nodes[src].signature = key
        fetch = [n for n, node in self.nodes.items() if node.op not in NOT_LAYERS or node.signature]
        self._fetch = fetch
        self._fn = wrapped.prune(feeds=[graph.get_tensor_by_name(n) for n in in_names],
                                 fetches=[graph.get_tensor_by_name(n) for n in fetch])
        self._tf = tf
        self.nodes = {n: self.nodes[n] for n in self.nodes if n in set(fetch) or self.nodes[n].op in NOT_LAYERS}

    def _through_identities(self, name: str) -> str:
        while name in self.nodes and self.nodes[name].op in ("Identity", "IdentityN") and self.nodes[name].inputs:
            name = self.nodes[name].inputs[0]
        return name

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        args = [self._tf.constant(feeds[k]) for k in sorted(self.input_of)]
        return {n: v.numpy() for n, v in zip(self._fetch, self._fn(*args))}


# -- LiteRT -------------------------------------------------------------------------------------


class LiteRTTap(Tap):
    def __init__(self, path: Path) -> None:
        import warnings

        from ai_edge_litert.interpreter import Interpreter

        from edgefm.core.quiet import quiet_native_output

        with quiet_native_output(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "preserve_all_tensors is intended for debugging": that is the point
            self._interp = Interpreter(model_path=str(path), experimental_preserve_all_tensors=True)
        sig = self._interp.get_signature_list().get(SERVING_SIGNATURE) or next(iter(self._interp.get_signature_list().values()), None)
        details = {d["index"]: d for d in self._interp.get_tensor_details()}
        self.nodes = {}
        sig_in: dict[int, str] = {}
        sig_out: dict[int, str] = {}
        if sig is not None:
            key = SERVING_SIGNATURE if SERVING_SIGNATURE in self._interp.get_signature_list() else None
            runner = self._interp.get_signature_runner(key)
            sig_in = {d["index"]: k for k, d in runner.get_input_details().items()}
            sig_out = {d["index"]: k for k, d in runner.get_output_details().items()}
        self.input_index = {k: i for i, k in sig_in.items()} or {
            d["name"]: d["index"] for d in self._interp.get_input_details()}
        order = 0
        for i in self._interp.get_input_details():
            self.nodes[str(i["index"])] = self._node(details[i["index"]], "INPUT", [], order, sig_in.get(i["index"]))
            order += 1
        for op in self._interp._get_ops_details():  # private, but the one way LiteRT's Python API lists the graph
            if op["op_name"] == "DELEGATE":
                continue  # XNNPACK's partitions repeat the ops; their outputs are the same tensors
            # only tensors computed in the graph: a DEQUANTIZE of float16 weights reads a constant (no layer)
            ins = [str(i) for i in op["inputs"] if i >= 0 and str(i) in self.nodes]
            for o in op["outputs"]:
                d = details[o]
                self.nodes[str(o)] = self._node(d, op["op_name"], ins, order, sig_out.get(o))
                order += 1
        self._names = {k: details[int(k)]["name"] for k in self.nodes}

    @staticmethod
    def _node(d: dict, op: str, ins: list[str], order: int, signature: str | None) -> Node:
        scale, zp = d["quantization"]
        quant = (float(scale), int(zp)) if scale and np.issubdtype(d["dtype"], np.integer) else None
        return Node(str(d["index"]), op, ins, [int(x) for x in d["shape_signature"]], np.dtype(d["dtype"]).name,
                    quant, signature, order)

    def tensor_name(self, key: str) -> str:
        return self._names[key]

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        it = self._interp
        for name, index in self.input_index.items():
            it.resize_tensor_input(index, list(np.shape(feeds[name])), strict=False)
        it.allocate_tensors()
        for name, index in self.input_index.items():
            node = self.nodes[str(index)]
            x = feeds[name]
            if node.quant is not None:
                scale, zp = node.quant
                info = np.iinfo(node.dtype)
                x = np.clip(np.round(x / scale) + zp, info.min, info.max)
            it.set_tensor(index, np.asarray(x, dtype=node.dtype))
        it.invoke()
        out = {}
        for key, node in self.nodes.items():
            if node.dtype.startswith("float") or node.quant is not None:
                out[key] = np.array(it.get_tensor(int(key)))
        return out


# -- ONNX Runtime -------------------------------------------------------------------------------


class OnnxTap(Tap):
    channels_first = True

    def __init__(self, path: Path) -> None:
        import onnx
        import onnxruntime as ort

        model = onnx.load(str(path))  # in memory: the shipped file is read, never written
        inits = {i.name for i in model.graph.initializer}
        inferred = onnx.shape_inference.infer_shapes(model)
        types = {v.name: v.type.tensor_type for v in (*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output)}
        graph_outputs = {o.name for o in model.graph.output}
        self.inputs = [i.name for i in model.graph.input if i.name not in inits]
        scales = {i.name: onnx.numpy_helper.to_array(i) for i in model.graph.initializer if i.name.endswith(("_scale", "_zero_point"))}
        self.nodes = {}
        order = 0
        for name in self.inputs:
            self.nodes[name] = Node(name, "INPUT", [], self._shape(types.get(name)), "float32", None, name, order)
            order += 1
        extra = []
        self.layout = {name: False for name in self.inputs}  # the signature's inputs: TF's own layout
        for n in model.graph.node:
            first = _layout_after(n, self.layout, inits)
            for o in n.output:
                if not o:
                    continue
                if first is not None:
                    self.layout[o] = first
                t = types.get(o)
                elem = onnx.helper.tensor_dtype_to_np_dtype(t.elem_type).name if t is not None and t.elem_type else "float32"
                quant = None
                if n.op_type == "DequantizeLinear" and len(n.input) >= 2 and n.input[1] in scales:
                    zp = scales.get(n.input[2]) if len(n.input) > 2 else None
                    if np.size(scales[n.input[1]]) == 1:
                        quant = (float(scales[n.input[1]]), int(zp) if zp is not None and np.size(zp) == 1 else 0)
                self.nodes[o] = Node(o, n.op_type, [i for i in n.input if i and i not in inits], self._shape(t), elem,
                                     quant, o if o in graph_outputs else None, order)
                order += 1
                if o not in graph_outputs:
                    extra.append(onnx.helper.make_empty_tensor_value_info(o))
        model.graph.output.extend(extra)
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        try:
            self._session = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
        except Exception as e:  # ORT raises its own types; the file is at fault
            raise ModelFileError(f"ONNX Runtime could not load {path} with its intermediate tensors as outputs: {e}") from e
        self._fetch = [o.name for o in self._session.get_outputs()]

    @staticmethod
    def _shape(t: object) -> list[int]:
        if t is None or not t.HasField("shape"):  # type: ignore[attr-defined]
            return []
        return [int(d.dim_value) if d.HasField("dim_value") else -1 for d in t.shape.dim]  # type: ignore[attr-defined]

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        values = self._session.run(self._fetch, {k: feeds[k] for k in self.inputs})
        return {n: v for n, v in zip(self._fetch, values) if isinstance(v, np.ndarray)
                and (v.dtype.kind == "f")}


#: ONNX ops after which a tensor's layout is TF's own again (they flatten or mix the axes)
_LAYOUT_RESETS = {"Reshape", "Flatten", "MatMul", "Gemm", "Shape", "Squeeze", "Unsqueeze", "Gather"}


def _layout_after(node: object, layout: dict[str, bool], inits: set[str]) -> bool | None:
    """Whether ``node``'s outputs are channels-first: tf2onnx brackets a channels-first region with
    Transpose nodes (perm [0, 3, 1, 2] in, [0, 2, 3, 1] out, measured on Keras CNNs); every other op
    keeps its first computed input's layout. ``None``: unknown (the match then goes by shape)."""
    op = node.op_type  # type: ignore[attr-defined]
    if op == "Transpose":
        perm = next((list(a.ints) for a in node.attribute if a.name == "perm"), None)  # type: ignore[attr-defined]
        if perm and len(perm) >= 3:
            if perm == [0, len(perm) - 1, *range(1, len(perm) - 1)]:
                return True
            if perm == [0, *range(2, len(perm)), 1]:
                return False
        return None
    if op in _LAYOUT_RESETS:
        return False
    known = [layout[i] for i in node.input if i and i not in inits and i in layout]  # type: ignore[attr-defined]
    return known[0] if known else None
