"""The per-chip configuration cache: only changed words are sent; CapMem changes add the settling wait."""

from __future__ import annotations

import numpy as np

from bss2.comm import EmulatorConnection
from bss2.exec import JITExecutor
from bss2.graph import matmul_graph
from bss2.hal import hagen, wire
from bss2.hal.emulator import EmulatorConfig

from .conftest import exact_matmul


class Recording(EmulatorConnection):
    """Keeps the instruction words of every program."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.programs = []

    def _execute_words(self, words):
        self.programs.append(words.copy())
        return super()._execute_words(words)


def _weight_words(words: np.ndarray) -> int:
    """Register words written into the synapse weight planes."""
    stream = wire.decode_instructions(words)
    base = 0x10000
    single = (stream.opcode == wire.Opcode.WRITE) & (stream.addresses >= base) & (stream.addresses < base + 32768)
    count = int(np.count_nonzero(single))
    for header, n in zip(stream.block_headers.tolist(), stream.block_counts.tolist()):
        start = (int(stream.words[header]) >> 32) & 0xFFFFFF
        count += max(0, min(start + n, base + 32768) - max(start, base))
    return count


def _has_settling_wait(words: np.ndarray) -> bool:
    stream = wire.decode_instructions(words)
    waits = stream.low32[stream.opcode == wire.Opcode.WAIT_UNTIL]
    return bool((waits >= hagen.CAPMEM_SETTLE_CYCLES).any())


def test_repeated_run_sends_no_configuration():
    connection = Recording(config=EmulatorConfig.ideal())
    executor = JITExecutor(connection)
    rng = np.random.default_rng(0)
    w = rng.integers(-63, 64, (128, 256))
    x = rng.integers(0, 32, (10, 128))
    graph, x_in, y_out = matmul_graph(w)
    _, first = executor.run(graph, {x_in: x})
    out, second = executor.run(graph, {x_in: x})
    assert first.config_words > 0 and second.config_words == 0
    assert _weight_words(connection.programs[0]) > 0 and _weight_words(connection.programs[1]) == 0
    assert _has_settling_wait(connection.programs[0]) and not _has_settling_wait(connection.programs[1])
    assert np.array_equal(out[y_out], exact_matmul(x, w))


def test_weight_change_sends_only_weight_words_and_no_settling():
    connection = Recording(config=EmulatorConfig.ideal())
    executor = JITExecutor(connection)
    rng = np.random.default_rng(1)
    w = rng.integers(-63, 64, (128, 256))
    x = rng.integers(0, 32, (10, 128))
    graph, x_in, _ = matmul_graph(w)
    executor.run(graph, {x_in: x})
    w2 = w.copy()
    w2[5, :10] = -w2[5, :10] + 1  # change a few weights
    graph2, x_in2, y_out2 = matmul_graph(w2)
    out, info = executor.run(graph2, {x_in2: x})
    changed_words = info.config_words
    assert 0 < changed_words <= 2 * 64  # both physical rows of input 5, at most all their quads
    assert not _has_settling_wait(connection.programs[-1])
    assert np.array_equal(out[y_out2], exact_matmul(x, w2))


def test_capmem_change_adds_the_settling_wait():
    connection = Recording(config=EmulatorConfig.ideal())
    executor = JITExecutor(connection)
    graph, x_in, _ = matmul_graph(np.ones((10, 10), int))
    executor.run(graph, {x_in: np.ones((2, 10), int)})
    executor.run(graph, {x_in: np.ones((2, 10), int)})
    assert not _has_settling_wait(connection.programs[-1])
    executor.invalidate_cache()  # unknown chip state: reset + full configuration, CapMem included
    executor.run(graph, {x_in: np.ones((2, 10), int)})
    assert _has_settling_wait(connection.programs[-1])


# ----------------------------------------------------------------------------- hot-path caches (exec.mac)


def test_column_tiles_of_a_row_block_share_their_input_words(monkeypatch):
    from bss2.exec import mac

    calls = []
    original = hagen.encode_vectors

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(mac.hagen, "encode_vectors", counting)
    rng = np.random.default_rng(2)
    w = rng.integers(-63, 64, (256, 1024))  # 2 row blocks x 4 column blocks: 8 tiles, 4 programs
    x = rng.integers(0, 32, (12, 256))
    graph, x_in, y_out = matmul_graph(w)
    executor = JITExecutor(EmulatorConnection(config=EmulatorConfig.ideal()))
    out, _ = executor.run(graph, {x_in: x})
    assert len(calls) == 2  # one encoding per row block, shared by its column tiles (both synrams)
    assert np.array_equal(out[y_out], exact_matmul(x, w))
    executor.close()


def test_planned_configuration_includes_the_weights_kept_aside():
    from bss2.exec.mac import ChipState, Tile, build_program, hagen_base_config, physical_weights
    from bss2.hal import ChipConfig, SynramOnDLS

    rng = np.random.default_rng(3)

    def tile(synram):
        return Tile(0, rng.integers(0, 32, (3, 128)), np.arange(128), np.arange(256), rng.integers(-63, 64, (128, 256)),
                    1, 5, (synram,), synram=synram)

    state = ChipState()
    programs = []
    for _ in range(3):
        tiles = [tile(0), tile(1)]
        programs.append(build_program(state, tiles, 1))
    expected = hagen_base_config().copy()
    for t in tiles:
        expected.set_synapse_weights(SynramOnDLS(t.synram), physical_weights(t))
    assert state.planned == expected
    # the words of all programs leave the chip in exactly that configuration
    applied = ChipConfig()
    for program in programs:
        applied = ChipConfig.from_program_writes(program.words, base=applied)
    assert applied == expected
    # a configuration set from elsewhere (e.g. a spiking program) makes the next hagen program diff everything
    state.planned = ChipConfig()
    last = tile(0)
    program = build_program(state, [last], 2)
    expected = hagen_base_config().copy()
    expected.set_synapse_weights(SynramOnDLS(0), physical_weights(last))
    assert program.capmem_changed and program.config_words > 8193
    assert ChipConfig.from_program_writes(program.words, base=ChipConfig()) == expected == state.planned


def test_run_encoding_writes_what_the_register_encoder_writes():
    from bss2.exec.mac import encode_runs
    from bss2.hal import ChipConfig
    from bss2.hal.program import encode_register_writes

    rng = np.random.default_rng(4)
    for case in range(50):
        n = int(rng.integers(1, 2000))
        steps = rng.integers(1, 3 if case % 2 else 40, n)
        addresses = 0x10000 + np.cumsum(steps) - steps[0]
        addresses = addresses[addresses < 0x10000 + 32768]
        data = rng.integers(0, 2**32, addresses.size, dtype=np.uint64).astype(np.uint32)
        ours, reference = encode_runs(addresses, data), encode_register_writes(addresses, data)
        assert ours.size == reference.size
        assert ChipConfig.from_program_writes(ours) == ChipConfig.from_program_writes(reference)


def test_partial_tiles_after_full_tiles_rewrite_only_what_changed():
    connection = Recording(config=EmulatorConfig.ideal())
    executor = JITExecutor(connection)
    rng = np.random.default_rng(5)
    for shape in ((128, 256), (100, 130), (128, 256), (7, 3), (7, 3)):
        w = rng.integers(-63, 64, shape)
        x = rng.integers(0, 32, (5, shape[0]))
        graph, x_in, y_out = matmul_graph(w)
        out, info = executor.run(graph, {x_in: x})
        assert np.array_equal(out[y_out], exact_matmul(x, w))
    assert info.config_words > 0  # new random weights
    out, info = executor.run(graph, {x_in: x})
    assert info.config_words == 0
    executor.close()


def test_chunked_input_encoding_equals_one_pass():
    from bss2.exec.mac import Tile, input_words

    rng = np.random.default_rng(6)
    for batch, num_sends in ((1500, 1), (700, 2), (3, 1)):
        x = rng.integers(0, 32, (batch, 256))
        x[rng.random(x.shape) < 0.3] = 0  # sparse entries change the packing
        tiles = [Tile(0, x[:, 128 * s : 128 * (s + 1)], np.arange(128), np.arange(256), np.zeros((128, 256), np.int8),
                      num_sends, 5, (s,), synram=s) for s in (0, 1)]
        expected = hagen.hagen_input_words({0: x[:, :128], 1: x[:, 128:]}, num_sends=num_sends, wait_between_events=5)
        assert np.array_equal(input_words(tiles), expected)


def test_remembered_physical_weights_follow_the_weights():
    from bss2.exec.mac import ChipState, Tile, build_program

    rng = np.random.default_rng(7)
    x = rng.integers(0, 32, (4, 128))
    graphs = [matmul_graph(rng.integers(-63, 64, (128, 256))) for _ in range(2)]
    connection = Recording(config=EmulatorConfig.ideal())
    executor = JITExecutor(connection)
    for k in (0, 1, 0, 0, 1):  # alternating graphs rewrite the plane; a repeat sends nothing
        graph, x_in, y_out = graphs[k]
        out, info = executor.run(graph, {x_in: x})
        assert np.array_equal(out[y_out], exact_matmul(x, _weights_of(graph)))
    assert [_weight_words(p) > 0 for p in connection.programs] == [True, True, True, False, True]
    executor.close()
    # writable weights are never remembered: changing them in place is seen
    state = ChipState()
    w = rng.integers(-63, 64, (128, 256)).astype(np.int8)
    tile = Tile(0, x, np.arange(128), np.arange(256), w, 1, 5, (0,), synram=0)
    build_program(state, [tile], 1)
    assert build_program(state, [tile], 2).config_words == 0
    w[3, 4] = -w[3, 4] + 1
    assert build_program(state, [tile], 3).config_words > 0


def _weights_of(graph):
    from bss2.graph import MACSynapseArrayView

    (d,) = graph.find(MACSynapseArrayView)
    return np.asarray(graph.vertex(d).weights, dtype=np.int64)


def test_prefix_answers_are_remembered_only_for_read_only_indices():
    from bss2.exec.mac import _is_prefix

    fixed = np.arange(10)
    fixed.flags.writeable = False
    assert _is_prefix(fixed, 10) and not _is_prefix(fixed, 9) and _is_prefix(fixed, 10)
    shuffled = np.array([1, 0, 2])
    shuffled.flags.writeable = False
    assert not _is_prefix(shuffled, 3) and not _is_prefix(shuffled, 3)
    mutable = np.arange(4)
    assert _is_prefix(mutable, 4)
    mutable[0] = 3
    assert not _is_prefix(mutable, 4)


def test_alternating_graphs_send_what_differs_every_time():
    """Graphs with immutable weights taking turns on one chip (as a model's layers do): every run sends the
    planes that differ from what the chip holds (whole planes for a new matrix, a few words for a small
    change) and computes the exact product, however often the pairs recur."""
    connection = Recording(config=EmulatorConfig.ideal())
    executor = JITExecutor(connection)
    rng = np.random.default_rng(4)
    a = rng.integers(-63, 64, (256, 256), dtype=np.int8)
    b = rng.integers(-63, 64, (256, 256), dtype=np.int8)
    c = a.copy()
    c[7, :12] = -c[7, :12] // 2 + 1  # a few weights of one input
    graphs = {}
    for name, w in (("a", a), ("b", b), ("c", c)):
        w.flags.writeable = False
        graphs[name] = (w, matmul_graph(w))
    x = rng.integers(0, 32, (6, 256))
    executor.run(graphs["a"][1][0], {graphs["a"][1][1]: x})
    previous = "a"
    for name in "babcacbcab":
        w, (graph, x_in, y_out) = graphs[name]
        out, info = executor.run(graph, {x_in: x})
        assert np.array_equal(out[y_out], exact_matmul(x, w)), (previous, name)
        if {previous, name} == {"a", "c"}:
            assert 0 < info.config_words <= 2 * 64  # the quads of input 7's two physical rows
        else:
            assert info.config_words == 2 * (1 + 16384 // 2)  # both planes, whole: a block header and 8192 data words each
        previous = name


# ------------------------------------------------------------------------ other users of the same chip


def test_two_executors_on_one_connection_see_each_others_weights():
    """The cache describes the chip only while nobody else runs programs on it: a second executor (or a
    register-level user) on the same connection makes the next run reconfigure the chip in full."""
    connection = EmulatorConnection(config=EmulatorConfig.ideal())
    first, second = JITExecutor(connection), JITExecutor(connection)
    rng = np.random.default_rng(21)
    w1, w2 = rng.integers(-63, 64, (2, 128, 256))
    x = rng.integers(0, 32, (6, 128))
    g1, x1, y1 = matmul_graph(w1)
    g2, x2, y2 = matmul_graph(w2)
    for _ in range(2):  # interleaved: each executor's second run finds the other's weights on the chip
        out1, info1 = first.run(g1, {x1: x})
        assert np.array_equal(out1[y1], exact_matmul(x, w1))
        out2, info2 = second.run(g2, {x2: x})
        assert np.array_equal(out2[y2], exact_matmul(x, w2))
        assert info1.config_words > 0 and info2.config_words > 0
    # undisturbed again: the cache holds
    _, again = second.run(g2, {x2: x})
    assert again.config_words == 0


def test_a_register_level_program_between_runs_makes_the_next_run_reconfigure():
    connection = Recording(config=EmulatorConfig.ideal())
    executor = JITExecutor(connection)
    rng = np.random.default_rng(22)
    w = rng.integers(-63, 64, (128, 256))
    x = rng.integers(0, 32, (4, 128))
    graph, x_in, y_out = matmul_graph(w)
    executor.run(graph, {x_in: x})
    assert connection.programs_executed == 1
    connection.execute(wire.encode_write([0x10000], [0]))  # one synapse quad
    out, info = executor.run(graph, {x_in: x})
    assert np.array_equal(out[y_out], exact_matmul(x, w))
    assert _has_settling_wait(connection.programs[-1])  # a reset and the whole configuration
    assert connection.programs_executed == 3
