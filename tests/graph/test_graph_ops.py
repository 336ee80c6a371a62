"""Compute ops: tiling of matmul, recombination, conv unfolding, and the reference interpreter."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bss2.graph import (
    Addition,
    Concatenation,
    ConnectionType,
    ExternalInput,
    GraphBuilder,
    MACSynapseArrayView,
    apply_unfold,
    conv_weight_matrix,
    expanded_unfold_indices_1d,
    expanded_weight_matrix_1d,
    matmul_graph,
    ops,
    unfold_indices_1d,
    unfold_indices_2d,
)
from bss2.graph.reference import evaluate

CT = ConnectionType


def exact_mac(x, view):
    return np.asarray(x, np.int64) @ view.weights.astype(np.int64)


def exact_sum(vertex, *inputs):
    return sum(np.asarray(i, np.int64) for i in inputs)


def run(weights, x, exact):
    graph, xin, y = matmul_graph(weights)
    if exact:
        values = evaluate(graph, {xin: x}, mac=exact_mac, transformations={Addition: exact_sum})
    else:
        values = evaluate(graph, {xin: x})
    return graph, values[y]


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 1000), st.integers(1, 1000), st.integers(0, 2**32 - 1))
def test_recombined_exact_tiles_equal_the_full_product(n, m, seed):
    rng = np.random.default_rng(seed)
    w = rng.integers(-63, 64, size=(n, m))
    x = rng.integers(0, 32, size=(2, n))
    _, y = run(w, x, exact=True)
    np.testing.assert_array_equal(y, x @ w)


@settings(max_examples=15, deadline=None)
@given(st.integers(1, 600), st.integers(1, 600), st.integers(0, 2**32 - 1))
def test_saturating_semantics_per_row_chunk(n, m, seed):
    rng = np.random.default_rng(seed)
    w = rng.integers(-63, 64, size=(n, m))
    x = rng.integers(0, 32, size=(3, n)) // rng.integers(1, 60)
    _, y = run(w, x, exact=False)
    chunks = [np.clip(x[:, r:r + 128] @ w[r:r + 128], -128, 127) for r in range(0, n, 128)]
    expected = np.clip(np.sum(chunks, axis=0), -128, 127)
    np.testing.assert_array_equal(y, expected)


def test_tile_count_and_shapes():
    graph, _, _ = matmul_graph(np.zeros((300, 600), np.int8))
    tiles = [graph.vertex(d) for d in graph.find(MACSynapseArrayView)]
    assert len(tiles) == 3 * 3
    assert {t.weights.shape for t in tiles} == {(128, 256), (128, 88), (44, 256), (44, 88)}
    assert [t.synram for t in tiles] == [k % 2 for k in range(9)]
    # every tile in its own instance, plus the input and the combining instance
    assert len(graph.execution_instances()) == 9 + 2
    (concat,) = graph.find(Concatenation)
    assert graph.vertex(concat).sizes == (256, 256, 88)


def test_tiles_hold_views_of_one_matrix():
    w = np.ones((256, 512), np.int8)
    graph, _, _ = matmul_graph(w)
    tiles = [graph.vertex(d).weights for d in graph.find(MACSynapseArrayView)]
    base = tiles[0].base
    assert all(t.base is base for t in tiles)
    assert not any(t.flags.writeable for t in tiles)


def test_chips_round_robin():
    builder = GraphBuilder()
    x = builder.add(ExternalInput(CT.DataUInt5, 512))
    ops.matmul(builder, x, np.zeros((512, 256)), num_chips=2)
    graph = builder.build()
    chips = [graph.execution_instance(d).chip for d in graph.find(MACSynapseArrayView)]
    assert chips == [0, 0, 1, 1]


@pytest.mark.parametrize("bad, match", [
    (np.full((2, 2), 64), r"contain 64, out of range \[-63, 63\]"),
    (np.full((2, 2), 0.5), "integers"),
    (np.zeros((0, 3)), "non-empty"),
])
def test_matmul_rejects_bad_weights(bad, match):
    with pytest.raises(ValueError, match=match) if "integers" not in match else pytest.raises(TypeError):
        matmul_graph(bad)


def test_matmul_rejects_wrong_operand():
    builder = GraphBuilder()
    x = builder.add(ExternalInput(CT.DataUInt5, 3))
    with pytest.raises(ValueError, match="DataUInt5\\[4\\]"):
        ops.matmul(builder, x, np.zeros((4, 2)))
    with pytest.raises(ValueError, match="num_sends"):
        ops.matmul(builder, x, np.zeros((3, 2)), num_sends=0)


def test_layer_chain_with_transformations():
    rng = np.random.default_rng(3)
    w1, w2 = rng.integers(-63, 64, (200, 40)), rng.integers(-63, 64, (40, 10))
    builder = GraphBuilder()
    x = builder.add(ExternalInput(CT.DataUInt5, 200))
    h = ops.converting_relu(builder, ops.matmul(builder, x, w1), shift=2)
    out = ops.argmax(builder, ops.matmul(builder, h, w2))
    graph = builder.build()
    data = rng.integers(0, 4, (5, 200))
    values = evaluate(graph, {x: data})
    hidden = np.clip(np.clip(np.clip(data[:, :128] @ w1[:128], -128, 127)
                             + np.clip(data[:, 128:] @ w1[128:], -128, 127), -128, 127), 0, None) >> 2
    hidden = np.clip(hidden, 0, 31)
    expected = np.argmax(np.clip(hidden @ w2, -128, 127), axis=1)[:, None]
    np.testing.assert_array_equal(values[out], expected)


def reference_conv1d(x, weight, stride):
    out_ch, in_ch, k = weight.shape
    length = x.shape[-1]
    positions = (length - k) // stride + 1
    y = np.zeros((x.shape[0], out_ch, positions), np.int64)
    for t in range(positions):
        y[:, :, t] = np.einsum("bck,ock->bo", x[:, :, t * stride:t * stride + k], weight)
    return y


@pytest.mark.parametrize("stride", [1, 2, 3])
def test_conv1d_by_unfolding(stride):
    rng = np.random.default_rng(stride)
    x = rng.integers(0, 32, (2, 3, 20))
    weight = rng.integers(-63, 64, (4, 3, 5))
    idx = unfold_indices_1d(3, 20, 5, stride)
    rows = apply_unfold(x, idx)
    y = (rows @ conv_weight_matrix(weight)).reshape(2, -1, 4).transpose(0, 2, 1)
    np.testing.assert_array_equal(y, reference_conv1d(x, weight, stride))


def test_conv2d_by_unfolding():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 32, (2, 2, 7, 6))
    weight = rng.integers(-63, 64, (3, 2, 3, 2))
    idx = unfold_indices_2d(2, 7, 6, (3, 2), (2, 1))
    y = (apply_unfold(x, idx) @ conv_weight_matrix(weight)).reshape(2, 3, 5, 3)
    expected = np.zeros_like(y)
    for i in range(3):
        for j in range(5):
            patch = x[:, :, 2 * i:2 * i + 3, j:j + 2]
            expected[:, i, j] = np.einsum("bchw,ochw->bo", patch, weight)
    np.testing.assert_array_equal(y, expected)


@pytest.mark.parametrize("stride, expansions", [(1, 1), (1, 4), (2, 3), (3, 5)])
def test_expanded_conv1d_equals_conv1d(stride, expansions):
    rng = np.random.default_rng(expansions)
    length = 23
    x = rng.integers(0, 32, (2, 2, length))
    weight = rng.integers(-63, 64, (3, 2, 4))
    idx = expanded_unfold_indices_1d(2, length, 4, stride, expansions)
    matrix = expanded_weight_matrix_1d(weight, stride, expansions)
    windows = apply_unfold(x, idx) @ matrix  # (batch * windows, E * out)
    positions = (length - 4) // stride + 1
    y = windows.reshape(2, -1, 3)[:, :positions].transpose(0, 2, 1)
    np.testing.assert_array_equal(y, reference_conv1d(x, weight, stride))


def test_expanded_conv1d_is_one_tile_when_it_fits():
    weight = np.ones((8, 2, 5), np.int8)
    builder = GraphBuilder()
    matrix = expanded_weight_matrix_1d(weight, 1, 8)
    x = builder.add(ExternalInput(CT.DataUInt5, matrix.shape[0]))
    ops.expanded_conv1d(builder, x, weight, stride=1, num_expansions=8)
    assert len(builder.build().find(MACSynapseArrayView)) == 1


def test_weights_viewed_from_a_writable_array_are_copied():
    from bss2.graph import matmul_graph

    owner = np.arange(-8, 8, dtype=np.int8).reshape(4, 4)
    view = owner.view()
    view.flags.writeable = False
    graph, _, _ = matmul_graph(view)
    owner[:] = 0  # the user's array changes; the graph may not
    held = [v.weights for v in graph.vertices if hasattr(v, "weights") and isinstance(v.weights, np.ndarray)]
    assert held and all(w.any() for w in held)


@pytest.mark.parametrize(("kwargs", "error"), [
    ({"wait_between_events": 64}, "GraphValueError"),
    ({"wait_between_events": 2.5}, "GraphTypeError"),
    ({"num_sends": 2.5}, "GraphTypeError"),
    ({"num_sends": "2"}, "GraphTypeError"),
    ({"num_chips": float("nan")}, "GraphTypeError"),
])
def test_matmul_scalars_are_integers_in_range(kwargs, error):
    from bss2.graph import matmul_graph

    with pytest.raises(Exception) as info:
        matmul_graph(np.ones((4, 4), np.int8), **kwargs)
    assert type(info.value).__name__ == error
    assert next(iter(kwargs)) in str(info.value)


@pytest.mark.parametrize("weights", [np.full((2, 2), np.inf), np.full((2, 2), 1e300), [[1, 2], [3]]])
def test_matmul_weights_non_finite_huge_or_ragged_name_the_problem(weights):
    from bss2.graph import GraphValueError, matmul_graph

    with pytest.raises(GraphValueError, match="inf|1e\\+300|1-d or 2-d"):
        matmul_graph(weights)
