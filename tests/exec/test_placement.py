"""Persistent column-packed placement: a graph that fits onto the chips keeps all its weights there."""

from __future__ import annotations

import numpy as np
import pytest

from bss2.comm import EmulatorConnection
from bss2.exec import JITExecutor
from bss2.exec.placement import Slot, place
from bss2.graph import GraphBuilder, matmul_graph, ops
from bss2.graph.ports import ConnectionType
from bss2.graph.vertices import ExternalInput
from bss2.hal.emulator import EmulatorConfig

from .conftest import exact_matmul
from .test_cache import Recording, _weight_words


def _har_like(rng: np.random.Generator, scale: int = 63):
    """Three layers as in the HAR model: 288 x 16 (3 row tiles), 256 x 125 (2), 125 x 6 (1): 6 tiles, 304 columns."""
    w1 = rng.integers(-scale, scale + 1, (288, 16))
    w2 = rng.integers(-scale, scale + 1, (16 * 16, 125))
    w3 = rng.integers(-scale, scale + 1, (125, 6))
    builder = GraphBuilder()
    x = builder.add(ExternalInput(ConnectionType.DataUInt5, 288, "x"), execution_instance=builder.new_execution_instance())
    h1 = ops.matmul(builder, x, w1)
    a1 = ops.converting_relu(builder, h1, shift=1)
    # 16 "positions" of 16 channels flattened: here simply the same 16 outputs repeated (a Concatenation)
    from bss2.graph.vertices import Concatenation

    wide = builder.add(Concatenation(ConnectionType.DataUInt5, (16,) * 16), [a1] * 16, builder.new_execution_instance())
    h2 = ops.matmul(builder, wide, w2)
    a2 = ops.converting_relu(builder, h2, shift=1)
    y = ops.matmul(builder, a2, w3)
    graph = builder.build()

    def reference(inputs: np.ndarray) -> np.ndarray:
        hidden = np.clip(np.maximum(exact_matmul(inputs, w1), 0) >> 1, 0, 31)
        hidden2 = np.clip(np.maximum(exact_matmul(np.tile(hidden, (1, 16)), w2), 0) >> 1, 0, 31)
        return exact_matmul(hidden2, w3)

    return graph, x, y, reference


def test_place_packs_columns_and_spreads_a_level():
    slots = place([[16, 16, 16], [125, 125], [6]], n_chips=1)
    assert slots is not None
    conv, fc1, fc2 = slots
    # a level's tiles go to different synrams first; the third shares synram 0 in a second phase
    assert conv == [Slot(0, 0, 0, 0), Slot(0, 1, 0, 0), Slot(0, 0, 16, 1)]
    assert fc1 == [Slot(0, 1, 16, 0), Slot(0, 0, 32, 0)]  # the emptier synram first
    assert fc2 == [Slot(0, 1, 141, 0)]
    # several chips: a level's tiles pair up per chip, later levels fill the emptiest synrams
    assert [s.chip for level in place([[16, 16, 16], [125, 125], [6]], n_chips=3) for s in level] == [0, 0, 1, 1, 2, 2]
    assert place([[256, 256, 1]], n_chips=1) is None  # does not fit: the executor rewrites weights per level
    assert place([[256, 256, 1]], n_chips=2) is not None
    with pytest.raises(ValueError, match="n_chips"):
        place([[1]], n_chips=0)
    with pytest.raises(ValueError, match="width"):
        place([[257]], n_chips=1)


def test_packed_graph_equals_exact_arithmetic_and_keeps_its_weights():
    rng = np.random.default_rng(10)
    graph, x_in, y_out, reference = _har_like(rng)
    connection = Recording(config=EmulatorConfig.ideal())
    executor = JITExecutor(connection)
    for k in range(3):
        x = rng.integers(0, 32, (1 + 4 * k, 288))
        x[rng.random(x.shape) < 0.3] = 0
        out, info = executor.run(graph, {x_in: x})
        assert np.array_equal(out[y_out], reference(x))
        if k:
            assert info.config_words == 0  # every weight of the graph stays on the chip
    assert len(connection.programs) == 9  # one program per matmul level
    assert all(_weight_words(words) == 0 for words in connection.programs[3:])
    executor.close()


def test_another_graph_in_between_forces_a_correct_resend():
    rng = np.random.default_rng(11)
    graph, x_in, y_out, reference = _har_like(rng)
    other_w = rng.integers(-63, 64, (256, 256))
    other, o_in, o_out = matmul_graph(other_w)  # two full tiles: overwrites both synrams
    small_w = rng.integers(-63, 64, (20, 7))
    small, s_in, s_out = matmul_graph(small_w)  # overwrites a few columns of synram 0 only
    connection = Recording(config=EmulatorConfig.ideal())
    executor = JITExecutor(connection)
    x = rng.integers(0, 32, (5, 288))
    for between, between_in, between_w in ((other, o_in, other_w), (small, s_in, small_w)):
        out, _ = executor.run(graph, {x_in: x})
        assert np.array_equal(out[y_out], reference(x))
        xb = rng.integers(0, 32, (3, between_w.shape[0]))
        out, info = executor.run(between, {between_in: xb})
        assert np.array_equal(out[o_out if between is other else s_out], exact_matmul(xb, between_w))
        assert info.config_words > 0
        out, info = executor.run(graph, {x_in: x})
        assert info.config_words > 0  # the packed columns that were overwritten are written again
        assert np.array_equal(out[y_out], reference(x))
        out, info = executor.run(graph, {x_in: x})
        assert info.config_words == 0
    executor.close()


def test_packed_multi_chip_equals_single_chip(ideal_executor):
    rng = np.random.default_rng(12)
    graph, x_in, y_out, reference = _har_like(rng)
    x = rng.integers(0, 32, (7, 288))
    single, _ = ideal_executor(1).run(graph, {x_in: x})
    assert np.array_equal(single[y_out], reference(x))
    for chips in (2, 3):
        executor = ideal_executor(chips)
        multi, info = executor.run(graph, {x_in: x})
        assert np.array_equal(multi[y_out], single[y_out])
        assert {r.chip for r in info.records if r.chip is not None} == set(range(chips))
        again, info = executor.run(graph, {x_in: x})
        assert np.array_equal(again[y_out], single[y_out]) and info.config_words == 0


def test_large_batches_split_phases_into_programs():
    rng = np.random.default_rng(13)
    graph, x_in, y_out, reference = _har_like(rng, scale=20)
    connection = Recording(config=EmulatorConfig.ideal())
    executor = JITExecutor(connection)
    x = rng.integers(0, 32, (300, 288))
    out, _ = executor.run(graph, {x_in: x})
    assert np.array_equal(out[y_out], reference(x))
    assert len(connection.programs) == 4  # the first level's two phases run as two programs
    executor.close()


def test_packed_tiles_on_the_default_emulator_stay_close():
    """Charge on the other tiles' columns is never read: packing changes nothing but the columns used."""
    rng = np.random.default_rng(14)
    w = rng.integers(-20, 21, (100, 30))
    graph, x_in, y_out = matmul_graph(w)
    x = rng.integers(0, 32, (16, 100))
    with JITExecutor(EmulatorConnection(seed=3)) as executor:
        out, _ = executor.run(graph, {x_in: x})
    assert np.abs(out[y_out] - exact_matmul(x, w)).mean() < 6


def test_precomputed_host_steps_equal_the_vertices():
    from bss2.exec.executor import _Evaluator
    from bss2.graph import ConvertingReLU, Unfold

    rng = np.random.default_rng(15)
    indices = ops.unfold_indices_1d(3, 20, 4, stride=2)
    padded = indices.copy()
    padded[0, :2] = -1
    for vertex in (Unfold(ConnectionType.DataUInt5, 60, indices), Unfold(ConnectionType.DataUInt5, 60, padded)):
        x = rng.integers(0, 32, (5, 60)).astype(np.uint8)
        expected, got = vertex.evaluate(x), _Evaluator(vertex).evaluate(x)
        assert got.dtype == expected.dtype and np.array_equal(got, expected)
    for shift in (0, 1, 3, 7):
        vertex = ConvertingReLU(256, shift)
        for x in (np.arange(-128, 128, dtype=np.int8).reshape(1, 256), rng.integers(-128, 128, (4, 256)).astype(np.int64)):
            expected, got = vertex.evaluate(x), _Evaluator(vertex).evaluate(x)
            assert got.dtype == expected.dtype and np.array_equal(got, expected)


def test_out_of_range_tile_inputs_raise_and_change_no_state(monkeypatch):
    from bss2.exec import InputError
    from bss2.exec.executor import _Evaluator

    rng = np.random.default_rng(16)
    graph, x_in, y_out, reference = _har_like(rng)
    connection = Recording(config=EmulatorConfig.ideal())
    executor = JITExecutor(connection)
    x = rng.integers(0, 32, (2, 288))
    executor.run(graph, {x_in: x})
    programs = len(connection.programs)
    with monkeypatch.context() as patch:
        # a broken transformation between layers hands the next tiles activations outside 0..31
        patch.setattr(_Evaluator, "_converting_relu", lambda self, x: np.full(np.shape(x), 40, np.uint8))
        executor._plans.clear()  # plans bind their host steps when made
        with pytest.raises(InputError, match=r"\[0, 31\]"):
            executor.run(graph, {x_in: x})
    executor._plans.clear()
    assert len(connection.programs) == programs + 1  # the first layer ran, the second was refused
    out, info = executor.run(graph, {x_in: x})
    assert np.array_equal(out[y_out], reference(x)) and info.config_words == 0  # the cache is still valid
    executor.close()
