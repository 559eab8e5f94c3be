"""``match`` over graphs written by hand: position+shape pairs only the one TF tensor that fits, never guesses."""

from __future__ import annotations

from runtime_check.explain.graphs import Node, Tap, name_key
from runtime_check.explain.match import match


class Graph(Tap):
    def __init__(self, *nodes: Node) -> None:
        self.nodes = {n.name: n for n in nodes}
        for i, n in enumerate(nodes):
            n.order = i


def _tf() -> Graph:
    return Graph(
        Node("x:0", "Placeholder", [], [-1, 4], signature="x"),
        Node("call/MatMul:0", "MatMul", ["x:0"], [-1, 8]),
        Node("call/add:0", "AddV2", ["call/MatMul:0"], [-1, 8]),
        Node("call/Relu:0", "Relu", ["call/add:0"], [-1, 8]),
        Node("call/Sum:0", "Sum", ["call/Relu:0"], [-1, 3]),
        Node("call/out:0", "MatMul", ["call/Sum:0"], [-1, 2], signature="y"),
    )


def test_name_key_drops_call_wrappers_and_keeps_the_output_index() -> None:
    assert name_key("StatefulPartitionedCall/StatefulPartitionedCall/dense/MatMul:0") == "dense/MatMul:0"
    assert name_key("PartitionedCall_1/Relu") == "Relu:0"
    assert name_key("split:1") == "split:1"


def test_position_and_shape_pair_the_only_fit_and_leave_the_ambiguous() -> None:
    cand = Graph(
        Node("in", "INPUT", [], [-1, 4], signature="x"),
        Node("t1", "FULLY_CONNECTED", ["in"], [-1, 8]),   # MatMul, add or Relu: three fit, none is taken
        Node("t2", "SUM", ["t1"], [-1, 3]),               # renamed; its inputs are unmatched: no place
        Node("out", "FULLY_CONNECTED", ["t2"], [-1, 2], signature="y"),
    )
    m = match(_tf(), cand)
    assert {(p.candidate, p.tf, p.method) for p in m.pairs} == {("in", "x:0", "signature"), ("out", "call/out:0", "signature")}
    assert m.unmatched_candidate["t1"] == "3 TF tensors of its shape lie at its place in the graph"
    assert "t2" in m.unmatched_candidate


def test_position_and_shape_pair_a_renamed_tensor_between_matched_ones() -> None:
    cand = Graph(
        Node("in", "INPUT", [], [-1, 4], signature="x"),
        Node("call/Relu", "FC", ["in"], [-1, 8]),
        Node("renamed", "SUM", ["call/Relu"], [-1, 3]),
        Node("out", "FC", ["renamed"], [-1, 2], signature="y"),
    )
    m = match(_tf(), cand)
    got = {p.candidate: (p.tf, p.method) for p in m.pairs}
    assert got["call/Relu"] == ("call/Relu:0", "name")
    assert got["renamed"] == ("call/Sum:0", "position+shape")
    assert m.unmatched_tf == ["call/MatMul:0", "call/add:0"]  # fused away, reported


def test_a_fused_tensor_stands_for_its_last_op_in_tf_order() -> None:
    # LiteRT lists the fused ops in no fixed order ("MatMul;Relu;add" measured on a trained MLP)
    fused = "call/MatMul;call/Relu;call/add"
    cand = Graph(Node("in", "INPUT", [], [-1, 4], signature="x"), Node(fused, "FC", ["in"], [-1, 8]))
    m = match(_tf(), cand)
    pair = next(p for p in m.pairs if p.candidate == fused)
    assert pair.tf == "call/Relu:0" and pair.method.startswith("name (fused")


def test_channels_first_and_ambiguous_layouts() -> None:
    tf = Graph(Node("x:0", "Placeholder", [], [-1, 5, 5, 3], signature="x"),
               Node("c/conv:0", "Conv2D", ["x:0"], [-1, 4, 4, 6]),
               Node("c/sq:0", "Conv2D", ["c/conv:0"], [-1, 6, 6, 6]))
    cand = Graph(Node("x", "INPUT", [], [-1, 5, 5, 3], signature="x"),  # as tf2onnx writes it
                 Node("c/conv:0", "Conv", ["x"], [-1, 6, 4, 4]),
                 Node("c/sq:0", "Conv", ["c/conv:0"], [-1, 6, 6, 6]))
    cand.channels_first = True
    m = match(tf, cand)
    pair = next(p for p in m.pairs if p.candidate == "c/conv:0")
    assert pair.perm == (0, 2, 3, 1) and pair.method == "name, channels-first"
    assert "ambiguous layout" in m.unmatched_candidate["c/sq:0"]
    cand.channels_first = False  # LiteRT: always TF's channels-last, a square shape is no ambiguity
    assert {p.candidate for p in match(tf, cand).pairs} >= {"c/sq:0"}
