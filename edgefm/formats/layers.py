"""Layer names across formats: one TF op as TensorFlow, TFLite and tf2onnx spell it.

TensorFlow names an op ``StatefulPartitionedCall/MatMul``, tf2onnx
``StatefulPartitionedCall/StatefulPartitionedCall/MatMul:0`` and TFLite ``MatMul``, or
several TF ops fused into one TFLite op as ``a/MatMul;a/Relu;a/BiasAdd`` (LiteRT lists
the parts in no fixed order). Measured on TF 2.21, tf2onnx 1.17, ai-edge-litert 2.3.
``name_key`` drops the call wrappers so the three compare equal; ``names_layer`` says
whether a tensor is computed by the layer a user named (``--keep-float NAME``): the op
itself, one of the ops fused into it, or any op under a scope (``functional_1/fc2_1``, a
Keras layer).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

_CALL = re.compile(r"^(Stateful)?PartitionedCall(_\d+)?$")


def name_key(name: str) -> str:
    """A tensor name without the call wrappers and with its output index (``a/MatMul`` -> ``MatMul:0``)."""
    base, sep, index = name.rpartition(":")
    if not sep or not index.isdigit():
        base, index = name, "0"
    parts = [p for p in base.split("/") if p and not _CALL.match(p)]
    return "/".join(parts) + ":" + index


def op_key(name: str) -> str:
    """The op's name without call wrappers or output index (``StatefulPartitionedCall/fc/MatMul:0`` -> ``fc/MatMul``)."""
    return name_key(name).rpartition(":")[0]


def fused_parts(name: str) -> list[str]:
    """The ``op_key`` of each TF op a (possibly fused, ``;``-joined) tensor name stands for."""
    return [op_key(p) for p in name.split(";") if p]


def names_layer(tensor: str, wanted: str) -> bool:
    """Whether ``tensor`` is computed by the layer ``wanted``: one of its ops, or an op under that scope."""
    want = op_key(wanted)
    return bool(want) and any(p == want or p.startswith(want + "/") for p in fused_parts(tensor))


def layer_label(tensor: str) -> str:
    """How a tensor's layer is shown: the scope all its fused ops share (a Keras layer), else the ops."""
    parts = fused_parts(tensor)
    scopes = {p.rpartition("/")[0] for p in parts}
    if len(parts) > 1 and len(scopes) == 1 and "" not in scopes:
        return scopes.pop()
    return ";".join(parts)


def select_layers(layers: Sequence[tuple[str, str]], wanted: Sequence[str], fmt: str) -> list[str]:
    """The targets (tensor or node names) of the ``(label, target)`` layers each name in ``wanted`` names: its
    label, one of its ops, or a scope over them (``--keep-float``). An unknown name is a ConfigError listing them."""
    from edgefm.core.errors import ConfigError

    found: list[str] = []
    for want in wanted:
        hits = [t for label, t in layers if label == want or names_layer(label, want) or names_layer(t, want)]
        if not hits:
            raise ConfigError(f"--keep-float {want}: this model has no such layer. Its {fmt} layers are: "
                              f"{', '.join(label for label, _ in layers)} (a Keras layer's scope, e.g. "
                              "'functional_1/dense_1', names all of its ops).")
        found += [t for t in hits if t not in found]
    return found
