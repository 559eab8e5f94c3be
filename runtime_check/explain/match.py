"""Pair each candidate tensor with the TensorFlow tensor it stands for, saying how; never by guess.

In order of trust:

1. ``signature``: the model's named inputs and outputs;
2. ``name``: the TF op name the converter kept (tf2onnx keeps TF tensor names such as
   ``StatefulPartitionedCall/.../MatMul:0``; TFLite names a tensor after its TF op, and a
   fused op after all of them, ``MatMul;Relu``: its output is the value of the one latest in
   TF's graph order, and the others are fused away);
3. ``quantize``/``dequantize``: a TFLite QUANTIZE output or DEQUANTIZE input is the same
   value as the tensor on the other side of the op; an ONNX QuantizeLinear -> DequantizeLinear
   pair stands for the tensor it quantizes (ONNX Runtime's quantizer folds a ReLU into the
   pair, so the tensor before it may hold pre-ReLU values under the ReLU's name);
4. ``position+shape``: the one unmatched TF tensor of the same shape downstream of the
   TF counterparts of its inputs and upstream of a matched tensor downstream of it;
   several candidates there leave it unmatched.

TF layers left without a counterpart are reported as ``fused away``, not compared.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from runtime_check.explain.graphs import NOT_LAYERS, Tap, name_key


@dataclass(frozen=True)
class Pair:
    tf: str
    candidate: str
    candidate_name: str  # the tensor's name in the candidate file
    method: str
    #: axes that bring the candidate's value into TF's layout (tf2onnx computes convolutions channels-first)
    perm: tuple[int, ...] | None = None


@dataclass
class Matching:
    pairs: list[Pair]
    #: TF layers with no counterpart (fused away, or folded by the converter)
    unmatched_tf: list[str]
    #: candidate tensors with no TF counterpart (and why)
    unmatched_candidate: dict[str, str]


def _compatible(a: list[int], b: list[int]) -> bool:
    return len(a) == len(b) and all(x == y or x < 0 or y < 0 for x, y in zip(a, b))


def _to_channels_last(rank: int) -> tuple[int, ...]:
    """N, C, spatial... -> N, spatial..., C."""
    return (0, *range(2, rank), 1)


def _layout(tf_shape: list[int], cand_shape: list[int], channels_first: bool,
            known: bool | None = None) -> tuple[int, ...] | None | str:
    """``known``: the candidate tensor's layout as the tap traced it (True: channels-first). Without it: ``None``: same layout; a permutation: the candidate is channels-first (tf2onnx keeps the TF name on the
    NCHW tensor, measured on a Keras CNN with tf2onnx 1.17); ``"ambiguous"``: both fit (e.g. [N, 6, 6, 6]);
    ``"no"``: neither."""
    if known is not None and len(cand_shape) >= 3:
        perm = _to_channels_last(len(cand_shape))
        shape = [cand_shape[i] for i in perm] if known else cand_shape
        fits = _compatible(tf_shape, shape) or _compatible([d for d in tf_shape if d != 1], [d for d in shape if d != 1])
        return (perm if known else None) if fits else "no"
    direct = _compatible(tf_shape, cand_shape)
    perm = _to_channels_last(len(cand_shape)) if len(cand_shape) >= 3 and channels_first else None
    moved = perm is not None and _compatible(tf_shape, [cand_shape[i] for i in perm])
    if direct and moved and list(perm) != list(range(len(cand_shape))):
        known = all(d >= 0 for d in cand_shape[1:])
        return "ambiguous" if known and len(set(cand_shape[1:])) == 1 or not known else None
    if direct:
        return None
    if moved:
        return perm
    # a dimension of 1 more or less (tf2onnx's ReduceMean keeps dims before a Squeeze): compared reshaped
    return None if _compatible([d for d in tf_shape if d != 1], [d for d in cand_shape if d != 1]) else "no"


def _reach(start: set[str], edges: dict[str, list[str]]) -> set[str]:
    seen, todo = set(start), deque(start)
    while todo:
        for nxt in edges.get(todo.popleft(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def match(tf: Tap, cand: Tap, names: dict[str, str] | None = None) -> Matching:
    """``names``: candidate key -> its name in the file (LiteRT keys are tensor indices).

    The four methods in order of trust, each a step over what the ones before found."""
    m = _Match(tf, cand, names or {k: k for k in cand.nodes})
    m.by_signature_and_name()
    m.by_quantize()
    m.by_quantize_dequantize_pair()
    m.by_position_and_shape()
    m.mark_the_rest()
    return m.result()


@dataclass
class _Match:
    """The state of one ``match``: candidate -> (TF tensor, method), the layouts found, what stays unmatched."""

    tf: Tap
    cand: Tap
    names: dict[str, str]
    found: dict[str, tuple[str, str]] = field(default_factory=dict)  # candidate -> (tf, method)
    perms: dict[str, tuple[int, ...]] = field(default_factory=dict)
    unmatched: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.layers = {n: node for n, node in self.tf.nodes.items() if node.op not in NOT_LAYERS or node.signature}
        self.by_key: dict[str, list[str]] = {}
        for n in self.layers:
            self.by_key.setdefault(name_key(n), []).append(n)
        self.by_sig = {node.signature: n for n, node in self.layers.items() if node.signature}
        self.consumers = self.cand.consumers()

    # 1-2: signature, then name
    def by_signature_and_name(self) -> None:
        for c, node in self.cand.nodes.items():
            if node.signature and node.signature in self.by_sig:
                self.found[c] = (self.by_sig[node.signature], "signature")
                continue
            if not node.inputs:
                continue  # computed from constants only (a float16 weight's DEQUANTIZE may carry the op's name)
            self._by_name(c, node)

    def _by_name(self, c: str, node: Any) -> None:
        layers, by_key = self.layers, self.by_key
        hits = [t for part in self.names[c].split(";") for t in by_key.get(name_key(part), [])]
        unique = [t for t in dict.fromkeys(hits) if len(by_key[name_key(t)]) == 1]
        if not unique:
            return
        last = max(unique, key=lambda t: layers[t].order)
        layout = _layout(layers[last].shape, node.shape, self.cand.channels_first,
                         getattr(self.cand, "layout", {}).get(c))
        if layout in ("no", "ambiguous"):
            self.unmatched[c] = (f"named after {last} but its shape {node.shape} is TF's {layers[last].shape} in an "
                                 "ambiguous layout" if layout == "ambiguous" else
                                 f"named after {last} but of shape {node.shape}, TF's is {layers[last].shape}")
            return
        how = "name" if len(unique) == 1 else f"name (fused, the last of {len(unique)} TF ops)"
        if layout is not None:
            self.perms[c] = layout  # type: ignore[assignment]
            how += ", channels-first"
        self.found[c] = (last, how)

    # 3: quantize / dequantize
    def by_quantize(self) -> None:
        found, names = self.found, self.names
        for c, node in self.cand.nodes.items():
            if node.op in ("QUANTIZE",) and node.inputs and node.inputs[0] in found and c not in found:
                found[c] = (found[node.inputs[0]][0], "quantize of " + names[node.inputs[0]])
            if node.op == "DEQUANTIZE" and node.inputs and c in found and node.inputs[0] not in found:
                found[node.inputs[0]] = (found[c][0], "dequantized as " + names[c])

    def by_quantize_dequantize_pair(self) -> None:
        found, cand = self.found, self.cand
        for c, node in cand.nodes.items():
            if node.op != "QuantizeLinear" or not node.inputs:
                continue
            src = node.inputs[0]
            dq = [d for d in self.consumers.get(c, []) if cand.nodes[d].op == "DequantizeLinear"]
            if len(dq) == 1 and src in found and (dq[0] not in found or found[dq[0]][1] != "signature"):
                found[dq[0]] = (found[src][0], "quantize-dequantize of " + self.names[src])
                if src in self.perms:
                    self.perms[dq[0]] = self.perms[src]
                del found[src]
                self.unmatched[src] = "before its QuantizeLinear/DequantizeLinear pair, which stands for it"

    # 4: position + shape
    def by_position_and_shape(self) -> None:
        tf, cand, found = self.tf, self.cand, self.found
        tf_down: dict[str, list[str]] = {n: [] for n in tf.nodes}
        for n, node in tf.nodes.items():
            for i in node.inputs:
                if i in tf_down:
                    tf_down[i].append(n)
        tf_up = {n: [i for i in node.inputs if i in tf.nodes] for n, node in tf.nodes.items()}
        taken = {t for t, _ in found.values()}
        for c in sorted(cand.nodes, key=lambda k: cand.nodes[k].order):
            node = cand.nodes[c]
            if (c in found or c in self.unmatched or not node.inputs or not all(i in found for i in node.inputs)
                    or any(i in self.perms for i in node.inputs)):  # position+shape only where layouts agree
                continue
            options = self._options_at(c, node, tf_down, tf_up, taken)
            if options is None:
                continue
            if len(options) == 1:
                found[c] = (options[0], "position+shape")
                taken.add(options[0])
            elif options:
                self.unmatched[c] = f"{len(options)} TF tensors of its shape lie at its place in the graph"

    def _options_at(self, c: str, node: Any, tf_down: dict[str, list[str]], tf_up: dict[str, list[str]],
                    taken: set[str]) -> list[str] | None:
        """The free TF tensors of ``c``'s shape between its inputs' and its consumers' counterparts."""
        found = self.found
        below = _reach({found[i][0] for i in node.inputs}, tf_down)
        after = [d for d in _reach({c}, self.consumers) if d in found and d != c]
        if not after:
            return None
        above = _reach({found[d][0] for d in after}, tf_up)
        return [t for t in self.layers if t in below and t in above and t not in taken
                and t not in {found[i][0] for i in node.inputs} and _compatible(self.layers[t].shape, node.shape)]

    def mark_the_rest(self) -> None:
        for c, node in self.cand.nodes.items():
            if not node.inputs or not (node.dtype.startswith("float") or node.quant is not None):
                continue  # a constant (e.g. a DequantizeLinear of weights) or an integer index tensor: no layer
            if c not in self.found and c not in self.unmatched:
                self.unmatched[c] = "no TF tensor of its name or place"

    def result(self) -> Matching:
        layers, names = self.layers, self.names
        pairs = [Pair(t, c, names[c], how, self.perms.get(c)) for c, (t, how) in self.found.items()]
        pairs.sort(key=lambda p: (layers[p.tf].order if p.tf in layers else -1, self.cand.nodes[p.candidate].order))
        matched_tf = {p.tf for p in pairs}
        fused = [n for n in sorted(layers, key=lambda n: layers[n].order) if n not in matched_tf]
        return Matching(pairs, fused, {names[c]: why for c, why in self.unmatched.items()})
