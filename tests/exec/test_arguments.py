"""Bad arguments to the executor: a clear error of the project's own, nothing sent, the executor usable."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from bss2.comm import EmulatorConnection
from bss2.exec import ExecError, InputError, JITExecutor, UnsupportedGraphError
from bss2.graph import (
    CADCMembraneReadoutView,
    DataInput,
    DataOutput,
    ExternalInput,
    GraphBuilder,
    MACSynapseArrayView,
    NeuronView,
    matmul_graph,
)
from bss2.graph import ConnectionType as CT
from bss2.hal.emulator import EmulatorConfig

from .conftest import exact_matmul


def _small(seed: int = 0):
    rng = np.random.default_rng(seed)
    w = rng.integers(-63, 64, (20, 12), dtype=np.int8)
    x = rng.integers(0, 32, (3, 20), dtype=np.uint8)
    graph, x_in, y = matmul_graph(w)
    return graph, x_in, y, w, x


def test_one_connection_twice_is_refused():
    connection = EmulatorConnection(config=EmulatorConfig.ideal())
    with pytest.raises(ExecError, match=r"connections\[1\] is connections\[0\]"):
        JITExecutor([connection, connection])
    with pytest.raises(ExecError, match="sequence"):
        JITExecutor(5)  # type: ignore[arg-type]


@pytest.mark.parametrize("inputs", [None, [(0, 1)], np.zeros((3, 20))])
def test_inputs_must_be_a_mapping(ideal_executor, inputs):
    graph, *_ = _small()
    with pytest.raises(InputError, match="mapping"):
        ideal_executor().run(graph, inputs)


@pytest.mark.parametrize("key", ["0", 0.7, True, None])
def test_input_keys_must_be_vertex_ids(ideal_executor, key):
    graph, x_in, y, w, x = _small()
    executor = ideal_executor()
    with pytest.raises(InputError, match="vertex ids"):
        executor.run(graph, {key: x})
    outputs, _ = executor.run(graph, {np.int64(int(x_in)): x})  # numpy integers are vertex ids
    np.testing.assert_array_equal(outputs[y], exact_matmul(x, w))


def test_ragged_input_and_the_true_minimum_in_the_message(ideal_executor):
    graph, x_in, *_ = _small()
    executor = ideal_executor()
    with pytest.raises(InputError, match=f"v{int(x_in)}"):
        executor.run(graph, {x_in: [[1, 2], [3]]})
    with pytest.raises(InputError, match=r"got \[40, 41\]"):
        executor.run(graph, {x_in: np.full((2, 20), 40, np.uint16) + np.eye(2, 20, dtype=np.uint16)})


def test_int32_inputs_are_range_checked(ideal_executor):
    from bss2.graph import Concatenation

    builder = GraphBuilder()
    x = builder.add(ExternalInput(CT.DataInt32, 2))
    y = builder.add(Concatenation(CT.DataInt32, (2,)), [x])
    graph = builder.build()
    executor = ideal_executor()
    with pytest.raises(InputError, match=r"\[-2147483648, 2147483647\], got \[-1125899906842624, 1099511627776\]"):
        executor.run(graph, {x: np.array([[2**40, -(2**50)]])})
    outputs, _ = executor.run(graph, {x: np.array([[2**31 - 1, -(2**31)]])})
    np.testing.assert_array_equal(outputs[y], [[2**31 - 1, -(2**31)]])


def test_close_waits_for_a_run_on_another_thread(ideal_executor):
    graph, x_in, y, w, x = _small()
    executor = ideal_executor()
    big = np.random.default_rng(1).integers(0, 32, (4000, 20), dtype=np.uint8)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            executor.run(graph, {x_in: big})
        except ExecError:
            pass  # closed before it started: a clear refusal
        except BaseException as error:  # noqa: BLE001 - collected for the assertion
            errors.append(error)

    thread = threading.Thread(target=run)
    thread.start()
    executor.close()
    thread.join(60)
    assert not thread.is_alive() and not errors
    with pytest.raises(ExecError, match="closed"):
        executor.run(graph, {x_in: x})


def _chain(neuron=None, readout=None, output=None):
    """ExternalInput -> DataInput -> MAC view (16 columns) -> NeuronView -> CADC readout -> DataOutput, with
    optional slices (start, stop) on the last three edges."""
    rng = np.random.default_rng(3)
    columns = np.arange(16)
    b = GraphBuilder()
    i0, i1 = b.new_execution_instance(), b.new_execution_instance()
    x = b.add(ExternalInput(CT.DataUInt5, 8), [], i0)
    d = b.add(DataInput(CT.UInt5, 8), [x], i1)
    v = b.add(MACSynapseArrayView(synram=0, rows=np.arange(8), columns=columns, weights=rng.integers(-63, 64, (8, 16))), [d], i1)
    n_cols = columns if neuron is None else columns[neuron[0] : neuron[1]]
    n = b.add(NeuronView(row=0, columns=n_cols), [v if neuron is None else v[neuron[0] : neuron[1]]], i1)
    r_cols = n_cols if readout is None else n_cols[readout[0] : readout[1]]
    r = b.add(CADCMembraneReadoutView(synram=0, columns=r_cols), [n if readout is None else n[readout[0] : readout[1]]], i1)
    size = r_cols.size if output is None else output[1] - output[0]
    o = b.add(DataOutput(CT.Int8, size), [r if output is None else r[output[0] : output[1]]], i1)
    return b.build(), x, o


@pytest.mark.parametrize("where", ["neuron", "readout", "output"])
@pytest.mark.parametrize("lean", [True, False])
def test_a_slice_along_the_readout_chain_is_refused_not_ignored(ideal_executor, where, lean):
    graph, x, _ = _chain(**{where: (2, 6)})
    executor = ideal_executor()
    executor.lean = lean
    with pytest.raises(UnsupportedGraphError, match="must take all of them"):
        executor.run(graph, {x: np.ones((2, 8), np.uint8)})
    graph, x, o = _chain()
    outputs, _ = executor.run(graph, {x: np.ones((2, 8), np.uint8)})
    assert outputs[o].shape == (2, 16)
