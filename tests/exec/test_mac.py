"""Hagen-mode execution: every compute op equals the exact integer arithmetic on the ideal emulator."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bss2.comm import EmulatorConnection
from bss2.exec import ExecutionFailed, InputError, JITExecutor
from bss2.graph import GraphBuilder, matmul_graph, ops
from bss2.graph.ports import ConnectionType
from bss2.graph.vertices import ExternalInput
from bss2.hal.emulator import EmulatorConfig

from .conftest import GAIN, exact_matmul


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    n=st.integers(1, 300),
    m=st.integers(1, 600),
    batch=st.integers(1, 40),
    num_sends=st.integers(1, 3),
    seed=st.integers(0, 2**31),
)
def test_matmul_equals_exact_arithmetic(ideal_executor, n, m, batch, num_sends, seed):
    rng = np.random.default_rng(seed)
    w = rng.integers(-63, 64, (n, m))
    x = rng.integers(0, 32, (batch, n))
    graph, x_in, y_out = matmul_graph(w, num_sends=num_sends)
    executor = ideal_executor()
    outputs, info = executor.run(graph, {x_in: x})
    assert np.array_equal(outputs[y_out], exact_matmul(x, w, num_sends))
    assert info.hardware_time > 0 and info.words_sent > 0 and info.words_received > 0


def test_large_matmul_spans_many_tiles(ideal_executor):
    rng = np.random.default_rng(1)
    w = rng.integers(-63, 64, (1000, 1000))
    x = rng.integers(0, 32, (20, 1000))
    graph, x_in, y_out = matmul_graph(w)
    outputs, _ = ideal_executor().run(graph, {x_in: x})
    assert np.array_equal(outputs[y_out], exact_matmul(x, w))


def test_multi_chip_equals_single_chip(ideal_executor):
    rng = np.random.default_rng(2)
    w = rng.integers(-63, 64, (400, 700))
    x = rng.integers(0, 32, (30, 400))
    graph, x_in, y_out = matmul_graph(w)
    single, _ = ideal_executor(1).run(graph, {x_in: x})
    for chips in (2, 4):
        executor = ideal_executor(chips)
        multi, info = executor.run(graph, {x_in: x})
        assert np.array_equal(multi[y_out], single[y_out])
        assert {r.chip for r in info.records if r.chip is not None} == set(range(chips))


def test_layers_with_transformations_between_them(ideal_executor):
    rng = np.random.default_rng(3)
    w1 = rng.integers(-63, 64, (64, 200))
    w2 = rng.integers(-63, 64, (200, 10))
    x = rng.integers(0, 32, (16, 64))
    builder = GraphBuilder()
    x_in = builder.add(ExternalInput(ConnectionType.DataUInt5, 64, "x"), execution_instance=builder.new_execution_instance())
    h = ops.matmul(builder, x_in, w1)
    h = ops.converting_relu(builder, h, shift=1)
    y = ops.matmul(builder, h, w2)
    r = ops.relu(builder, y)
    a = ops.argmax(builder, r)
    graph = builder.build()
    outputs, _ = ideal_executor().run(graph, {x_in: x})
    hidden = np.clip(np.maximum(exact_matmul(x, w1), 0) >> 1, 0, 31)
    expected = exact_matmul(hidden, w2)
    assert np.array_equal(outputs[y], expected)
    assert np.array_equal(outputs[r], np.maximum(expected, 0))
    assert np.array_equal(np.asarray(outputs[a]).reshape(-1), np.argmax(np.maximum(expected, 0), axis=1))


def test_conv1d_by_unfolding(ideal_executor):
    rng = np.random.default_rng(4)
    weight = rng.integers(-63, 64, (16, 9, 32))
    x = rng.integers(0, 32, (3, 9, 128))
    indices = ops.unfold_indices_1d(9, 128, 32, stride=6)
    unfolded = ops.apply_unfold(x, indices)
    builder = GraphBuilder()
    x_in = builder.add(ExternalInput(ConnectionType.DataUInt5, unfolded.shape[1], "x"), execution_instance=builder.new_execution_instance())
    y = ops.conv1d(builder, x_in, weight)
    outputs, _ = ideal_executor().run(builder.build(), {x_in: unfolded})
    assert np.array_equal(outputs[y], exact_matmul(unfolded, ops.conv_weight_matrix(weight)))


def test_bad_inputs_raise_and_leave_the_executor_usable(ideal_executor):
    w = np.ones((4, 3), int)
    graph, x_in, y_out = matmul_graph(w)
    executor = ideal_executor()
    with pytest.raises(InputError, match=r"\[0, 31\]"):
        executor.run(graph, {x_in: np.full((2, 4), 32)})
    with pytest.raises(InputError, match="shape"):
        executor.run(graph, {x_in: np.zeros((2, 5), int)})
    with pytest.raises(InputError, match="no input"):
        executor.run(graph, {})
    with pytest.raises(InputError, match="integers"):
        executor.run(graph, {x_in: np.zeros((2, 4))})
    outputs, _ = executor.run(graph, {x_in: np.full((2, 4), 31)})
    assert np.array_equal(outputs[y_out], exact_matmul(np.full((2, 4), 31), w))


def test_failures_carry_instance_chip_and_stage():
    class Broken(EmulatorConnection):
        def _execute_words(self, words):
            raise OSError("link down")

    executor = JITExecutor([Broken(config=EmulatorConfig.ideal())])
    graph, x_in, _ = matmul_graph(np.ones((4, 3), int))
    with pytest.raises(ExecutionFailed) as info:
        executor.run(graph, {x_in: np.ones((1, 4), int)})
    assert info.value.chip == 0 and info.value.stage == "execute" and info.value.instance is not None
    assert "link down" in str(info.value)
    executor.close()


def test_zeromock_runs_the_same_programs(zeromock_executor):
    graph, x_in, y_out = matmul_graph(np.ones((200, 300), int))
    outputs, info = zeromock_executor.run(graph, {x_in: np.ones((8, 200), int)})
    # a chip reading zero everywhere returns samples of 0, i.e. y = -128 per tile, summed and clipped
    assert outputs[y_out].shape == (8, 300) and (outputs[y_out] == -128).all()
    assert info.hardware_time > 0


def test_default_emulator_is_close_to_but_not_exactly_ideal():
    rng = np.random.default_rng(5)
    w = rng.integers(-63, 64, (128, 256))
    x = rng.integers(0, 32, (400, 128))
    graph, x_in, y_out = matmul_graph(w)
    with JITExecutor(EmulatorConnection(seed=3)) as executor:
        outputs, _ = executor.run(graph, {x_in: x})
    ideal = GAIN * (x @ w)
    measured = outputs[y_out].astype(float)
    assert not np.array_equal(outputs[y_out], exact_matmul(x, w))  # the chip has flaws
    linear = np.abs(ideal) < 60
    assert np.corrcoef(measured[linear], ideal[linear])[0, 1] > 0.9
    gains = np.array([np.polyfit(ideal[:, j], measured[:, j], 1)[0] for j in range(256)])
    assert 0.8 < gains.mean() < 1.2 and 0.05 < gains.std() / gains.mean() < 0.25  # uncalibrated spread
