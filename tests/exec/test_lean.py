"""The lean path of placed graphs: the same programs and results as the level-by-level path, a correct
configuration cache around other graphs, several chips, and bad inputs that raise and change nothing."""

from __future__ import annotations

import numpy as np
import pytest

from bss2.comm import EmulatorConnection
from bss2.exec import ExecutionFailed, InputError, JITExecutor, SpikeInput
from bss2.graph import matmul_graph
from bss2.hal import wire
from bss2.hal.emulator import EmulatorConfig

from .conftest import exact_matmul
from .test_cache import Recording, _weight_words
from .test_placement import _har_like


def _without_end(words: np.ndarray) -> np.ndarray:
    """A program's words without its END word (whose cookie counts programs)."""
    assert int(words[-1]) >> 56 == int(wire.Opcode.END)
    return words[:-1]


def _runs(lean: bool, n_chips: int, batches: list[int], seed: int = 20):
    rng = np.random.default_rng(seed)
    graph, x_in, y_out, reference = _har_like(rng)
    connections = [Recording(seed=i, config=EmulatorConfig.ideal()) for i in range(n_chips)]
    executor = JITExecutor(connections)
    executor.lean = lean
    results = []
    for batch in batches:
        x = rng.integers(0, 32, (batch, 288))
        x[rng.random(x.shape) < 0.2] = 0
        out, info = executor.run(graph, {x_in: x})
        assert np.array_equal(out[y_out], reference(x))
        results.append((out, info.config_words, sorted({r.chip for r in info.records if r.chip is not None})))
    executor.close()
    return results, [[_without_end(p) for p in c.programs] for c in connections]


@pytest.mark.parametrize("n_chips", [1, 2, 3])
def test_lean_programs_and_results_equal_the_level_by_level_path(n_chips, monkeypatch):
    batches = [1, 1, 5, 1, 64, 300, 2]  # 300: the first level's phases split into programs (level by level)
    taken = []
    original = JITExecutor._run_lean_level

    def counting(self, *args, **kwargs):
        taken.append(original(self, *args, **kwargs))
        return taken[-1]

    monkeypatch.setattr(JITExecutor, "_run_lean_level", counting)
    lean, lean_programs = _runs(True, n_chips, batches)
    # three matmul levels per run; at batch 300 on one chip the first level's two phases (600 vectors) run
    # level by level (several chips give each phase a synram of its own)
    assert taken == [True] * 15 + [n_chips > 1, True, True] + [True] * 3
    taken.clear()
    generic, generic_programs = _runs(False, n_chips, batches)
    assert not taken
    for (out_a, config_a, chips_a), (out_b, config_b, chips_b) in zip(lean, generic):
        assert out_a.keys() == out_b.keys()  # every host-memory vertex, as on the level-by-level path
        for d in out_a:
            assert out_a[d].dtype == out_b[d].dtype and np.array_equal(out_a[d], out_b[d]), d
        assert config_a == config_b and chips_a == chips_b
    assert [c for _, c, _ in lean][1:] == [0] * (len(batches) - 1)  # the weights stay on the chips
    for chip_a, chip_b in zip(lean_programs, generic_programs):
        assert len(chip_a) == len(chip_b)
        assert all(np.array_equal(a, b) for a, b in zip(chip_a, chip_b))


def test_lean_path_after_other_graphs_resends_what_they_overwrote():
    rng = np.random.default_rng(21)
    graph, x_in, y_out, reference = _har_like(rng)
    connection = Recording(config=EmulatorConfig.ideal())
    executor = JITExecutor(connection)
    x = rng.integers(0, 32, (1, 288))
    other_w = rng.integers(-63, 64, (256, 256))
    other, o_in, o_out = matmul_graph(other_w)  # two full tiles: overwrites both synrams
    small_w = rng.integers(-63, 64, (20, 7))
    small, s_in, s_out = matmul_graph(small_w)  # a few columns of synram 0
    wide_w = rng.integers(-63, 64, (256, 1024))
    wide, w_in, w_out = matmul_graph(wide_w)  # does not fit: placed round-robin, rewrites planes per program
    for between, b_in, b_out, b_w in ((other, o_in, o_out, other_w), (small, s_in, s_out, small_w), (wide, w_in, w_out, wide_w)):
        out, _ = executor.run(graph, {x_in: x})
        assert np.array_equal(out[y_out], reference(x))
        xb = rng.integers(0, 32, (1, b_w.shape[0]))
        out, info = executor.run(between, {b_in: xb})
        assert np.array_equal(out[b_out], exact_matmul(xb, b_w)) and info.config_words > 0
        out, info = executor.run(graph, {x_in: x})
        assert info.config_words > 0 and np.array_equal(out[y_out], reference(x))
        assert _weight_words(connection.programs[-3]) > 0  # the overwritten columns are written again
        out, info = executor.run(graph, {x_in: x})
        assert info.config_words == 0 and np.array_equal(out[y_out], reference(x))
    executor.invalidate_cache()  # unknown chip state: reset and full configuration, then correct results
    out, info = executor.run(graph, {x_in: x})
    assert info.config_words > 8192 and np.array_equal(out[y_out], reference(x))
    executor.close()


def test_lean_path_after_a_spiking_program_rewrites_the_hagen_configuration():
    from bss2.graph import ExternalSpikeSource, NetworkBuilder, Population, Projection, SpikeRecording, network_to_graph, route
    from bss2.graph.routing import labels_of

    rng = np.random.default_rng(22)
    graph, x_in, y_out, reference = _har_like(rng)
    builder = NetworkBuilder()
    source = builder.add(ExternalSpikeSource(2))
    population = builder.add(Population(4, record_spikes=True))
    builder.add(Projection(source, population, [0] * 4, list(range(4)), [63 * 4] * 4))
    builder.add(SpikeRecording(population))
    network = builder.done()
    routing = route(network)
    spiking = network_to_graph(network, routing)
    labels = labels_of(network, routing, source)
    with JITExecutor(EmulatorConnection(config=EmulatorConfig.ideal())) as executor:
        x = rng.integers(0, 32, (2, 288))
        for _ in range(2):
            out, _ = executor.run(graph, {x_in: x})
            assert np.array_equal(out[y_out], reference(x))
            spikes = [SpikeInput(np.arange(10) * 250 + 1000, labels[np.zeros(10, int)])]
            executor.run(spiking.graph, {spiking.spike_input: spikes}, runtime=12_500)
            out, info = executor.run(graph, {x_in: x})
            assert info.config_words > 0 and np.array_equal(out[y_out], reference(x))


def test_bad_inputs_raise_and_change_nothing():
    rng = np.random.default_rng(23)
    graph, x_in, y_out, reference = _har_like(rng)
    connection = Recording(config=EmulatorConfig.ideal())
    executor = JITExecutor(connection)
    x = rng.integers(0, 32, (1, 288))
    executor.run(graph, {x_in: x})
    sent = len(connection.programs)
    bad = [
        (x + 32, InputError, r"\[0, 31\]"),
        (x - 1 - x.max(), InputError, r"\[0, 31\]"),
        (x[:, :100], InputError, r"shape \(batch, 288\)"),
        (x.astype(np.float32), InputError, "integers"),
        (x[0], InputError, "shape"),
    ]
    for data, error, message in bad:
        with pytest.raises(error, match=message):
            executor.run(graph, {x_in: data})
    with pytest.raises(InputError, match="not ExternalInputs"):
        executor.run(graph, {x_in: x, x_in + 1000: x})
    assert len(connection.programs) == sent  # nothing reached the chip
    out, info = executor.run(graph, {x_in: x})
    assert info.config_words == 0 and np.array_equal(out[y_out], reference(x))
    empty, info = executor.run(graph, {x_in: x[:0]})  # an empty batch runs level by level
    assert empty[y_out].shape == (0, 6)
    executor.close()


class _Failing(EmulatorConnection):
    """Fails its ``fail_at``-th program (counted from 0) with a connection error."""

    def __init__(self, fail_at: int, **kwargs):
        super().__init__(**kwargs)
        self.fail_at, self.count = fail_at, 0

    def _execute_words(self, words):
        self.count += 1
        if self.count - 1 == self.fail_at:
            raise ConnectionError("link lost")
        return super()._execute_words(words)


@pytest.mark.parametrize("n_chips", [1, 2])
def test_a_failed_program_invalidates_the_chip_state_and_the_next_run_is_right(n_chips):
    rng = np.random.default_rng(24)
    graph, x_in, y_out, reference = _har_like(rng)
    connections = [_Failing(4 if i == n_chips - 1 else -1, seed=i, config=EmulatorConfig.ideal()) for i in range(n_chips)]
    with JITExecutor(connections) as executor:
        x = rng.integers(0, 32, (1, 288))
        out, _ = executor.run(graph, {x_in: x})
        assert np.array_equal(out[y_out], reference(x))
        with pytest.raises(ExecutionFailed, match="link lost") as caught:
            for _ in range(3):
                executor.run(graph, {x_in: x})
        assert caught.value.stage == "execute"
        out, info = executor.run(graph, {x_in: x})  # the failed chip is reset and configured again
        assert np.array_equal(out[y_out], reference(x)) and info.config_words > 0
        out, info = executor.run(graph, {x_in: x})
        assert np.array_equal(out[y_out], reference(x)) and info.config_words == 0


def test_lean_path_with_the_numpy_encoder(monkeypatch):
    from bss2.hal import hagen

    monkeypatch.setattr(hagen, "_compiled_encoder", lambda: None)  # as with BSS2_HAGEN_ENCODER=numpy
    assert hagen.encoder_mode() == "numpy"
    rng = np.random.default_rng(25)
    graph, x_in, y_out, reference = _har_like(rng)
    with JITExecutor(EmulatorConnection(config=EmulatorConfig.ideal())) as executor:
        for batch in (1, 3):
            x = rng.integers(0, 32, (batch, 288))
            out, _ = executor.run(graph, {x_in: x})
            assert np.array_equal(out[y_out], reference(x))
        from bss2.exec.executor import _Evaluator

        # a broken transformation between layers hands the next tiles activations outside 0..31
        monkeypatch.setattr(_Evaluator, "_converting_relu", lambda self, x: np.full(np.shape(x), 40, np.uint8))
        executor._plans.clear()  # plans bind their host steps when made
        with pytest.raises(InputError, match=r"instance \d+ must lie in \[0, 31\], got \[40, 40\]"):
            executor.run(graph, {x_in: x})


def test_scattered_driver_rows_and_composed_slices():
    """A hand-built tile on drivers that are not 0..n-1, fed by a slice of a slice of the input."""
    from bss2.exec.executor import _compose
    from bss2.graph import (
        CADCMembraneReadoutView,
        DataInput,
        DataOutput,
        GraphBuilder,
        MACSynapseArrayView,
        NeuronView,
    )
    from bss2.graph.ports import ConnectionType as CT
    from bss2.graph.vertices import ExternalInput

    rng = np.random.default_rng(26)
    rows = np.sort(rng.choice(128, 40, replace=False))
    w = rng.integers(-63, 64, (40, 9)).astype(np.int8)
    builder = GraphBuilder()
    x_in = builder.add(ExternalInput(CT.DataUInt5, 100, "x"), execution_instance=builder.new_execution_instance())
    instance = builder.new_execution_instance()
    d = builder.add(DataInput(CT.UInt5, 40), [x_in[30:70]], instance)
    d = builder.add(MACSynapseArrayView(synram=1, rows=rows, columns=np.arange(9), weights=w), [d], instance)
    d = builder.add(NeuronView(row=1, columns=np.arange(9)), [d], instance)
    d = builder.add(CADCMembraneReadoutView(synram=1, columns=np.arange(9), mode="hagen"), [d], instance)
    y_out = builder.add(DataOutput(CT.Int8, 9), [d], instance)
    graph = builder.build()
    results = {}
    for lean in (True, False):
        with JITExecutor(Recording(config=EmulatorConfig.ideal())) as executor:
            executor.lean = lean
            x = rng.integers(0, 32, (3, 100)) if lean else results[True][0]
            out, _ = executor.run(graph, {x_in: x})
            assert np.array_equal(out[y_out], exact_matmul(x[:, 30:70], w))
            results[lean] = (x, [_without_end(p) for p in executor.connections[0].programs])
    assert all(np.array_equal(a, b) for a, b in zip(results[True][1], results[False][1]))
    data = np.arange(50)
    for first in (slice(None, None), slice(3, None), slice(None, 40), slice(5, 45)):
        for second in (slice(None, None), slice(2, None), slice(None, 20), slice(4, 30)):
            part = _compose(first, second)
            assert np.array_equal(data if part is None else data[part], data[first][second]), (first, second)


def test_a_program_of_tiles_from_several_inputs_gathers_them():
    """Two matmuls of one level on different inputs share a program: its inputs are gathered from both
    values (the encoder cannot read one value in place) and the results stay exact, lean or not."""
    from bss2.graph import GraphBuilder, ops
    from bss2.graph.ports import ConnectionType
    from bss2.graph.vertices import ExternalInput

    rng = np.random.default_rng(9)
    w1, w2 = rng.integers(-63, 64, (60, 30)), rng.integers(-63, 64, (200, 20))
    builder = GraphBuilder()
    instance = builder.new_execution_instance()
    x1 = builder.add(ExternalInput(ConnectionType.DataUInt5, 60, "x1"), execution_instance=instance)
    x2 = builder.add(ExternalInput(ConnectionType.DataUInt5, 200, "x2"), execution_instance=instance)
    y1, y2 = ops.matmul(builder, x1, w1), ops.matmul(builder, x2, w2)
    graph = builder.build()
    for lean in (True, False):
        with JITExecutor(EmulatorConnection(config=EmulatorConfig.ideal())) as executor:
            executor.lean = lean
            programs = [p for level in executor._plan(graph).lean() or [] for p in level.programs]
            assert any(p.columns is None for p in programs)
            for batch in (1, 7, 40):
                a, b = rng.integers(0, 32, (batch, 60)), rng.integers(0, 32, (batch, 200))
                out, _ = executor.run(graph, {x1: a, x2: b})
                assert np.array_equal(out[y1], exact_matmul(a, w1)) and np.array_equal(out[y2], exact_matmul(b, w2))
    with JITExecutor(EmulatorConnection(config=EmulatorConfig.ideal())) as executor:
        bad = rng.integers(0, 32, (3, 200))
        bad[2, 150] = 40
        with pytest.raises(InputError):
            executor.run(graph, {x1: rng.integers(0, 32, (3, 60)), x2: bad})
