"""The compiled fast-path kernels: same responses as the numpy passes, and the documented noise stream."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bss2.hal import hagen, wire
from bss2.hal.emulator import Emulator, EmulatorConfig, fastpath, kernels
from bss2.hal.emulator.analog import NoiseSource, normal_table

needs_numba = pytest.mark.skipif(kernels.mode() != "numba", reason="numba not importable")


def test_splitmix64_is_the_published_generator():
    # SplitMix64 seeded with 0 (Steele, Lea and Flood 2014; the reference outputs of its C implementation)
    words = kernels.splitmix64(0, 0, 3)
    assert [hex(int(w)) for w in words] == ["0xe220a8397b1dcdaf", "0x6e789e6aa1b965f4", "0x6c45d188009454f"]
    # word i of a stream does not depend on where a draw starts
    np.testing.assert_array_equal(kernels.splitmix64(12345, 10, 5), kernels.splitmix64(12345, 0, 15)[10:])


def test_noise_stream_is_position_based_and_normal():
    source = NoiseSource(np.random.default_rng(7))
    first = source.reserve(3)
    assert (first, source.reserve(2), source.position) == (0, 3, 5)
    np.testing.assert_array_equal(source.indices(1, 2), source.indices(0, 3)[4:])
    x = source.normal((400_000,), 2.0)
    assert x.dtype == np.float32 and abs(x.mean()) < 0.02 and abs(x.std() - 2.0) < 0.01
    assert abs(np.mean(np.abs(x) > 4.0) - 0.0455) < 0.002  # two-sided 2-sigma tail of a normal
    table = normal_table()
    assert table.size == 65536 and abs(table.std() - 1.0) < 1e-3 and np.all(np.diff(table) > 0)
    # different chips (keys) give different streams
    other = NoiseSource(np.random.default_rng(8))
    assert not np.array_equal(other.indices(0, 64), source.indices(0, 64))


def _programs(rng):
    dense = {h: rng.integers(0, 32, (300, 128)) for h in (0, 1)}
    sparse = {h: rng.integers(0, 32, (50, 128)) * (rng.random((50, 128)) < 0.1) for h in (0, 1)}
    sparse[0][:4] = 0
    return [
        hagen.hagen_input_words(dense, end_cookie=3),
        hagen.hagen_input_words(sparse),
        hagen.hagen_input_words({0: dense[0][:40]}, num_sends=3, end_cookie=4),  # three terms per bin
        hagen.hagen_input_words({1: sparse[1]}, wait_between_events=17),
        hagen.hagen_input_words({0: dense[0][:1], 1: dense[1][:1]}),
    ]


def _run(which, config, weights, programs):
    with kernels.use(which):
        emulator = Emulator(seed=3, config=config)
        emulator.execute(hagen.hagen_config_words(weights))
        responses = [emulator.execute(p) for p in programs]
    return responses, emulator


@needs_numba
@pytest.mark.parametrize("config", [EmulatorConfig.default(), EmulatorConfig.ideal()], ids=["default", "ideal"])
def test_compiled_kernels_equal_the_numpy_passes(config):
    rng = np.random.default_rng(11)
    weights = {h: rng.integers(-63, 64, (128, 256)) for h in (0, 1)}
    programs = _programs(rng)
    assert all(fastpath.recognise(p) is not None for p in programs)
    (a, ea), (b, eb) = (_run(which, config, weights, programs) for which in ("numba", "numpy"))
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert ea.time == eb.time and ea.core.noise.position == eb.core.noise.position
    np.testing.assert_array_equal(ea.memory, eb.memory)
    np.testing.assert_array_equal(ea.core.v, eb.core.v)


@needs_numba
def test_results_do_not_depend_on_the_thread_split(monkeypatch):
    rng = np.random.default_rng(12)
    weights = {h: rng.integers(-63, 64, (128, 256)) for h in (0, 1)}
    program = _programs(rng)[0]
    split = _run("numba", EmulatorConfig.default(), weights, [program])[0]
    monkeypatch.setattr(kernels, "_MIN_PARALLEL", 1 << 30)
    whole = _run("numba", EmulatorConfig.default(), weights, [program])[0]
    np.testing.assert_array_equal(split[0], whole[0])


@needs_numba
def test_kernels_leave_bad_programs_to_the_general_path():
    from bss2.hal.regmap import REGISTER_MAP

    rng = np.random.default_rng(13)
    weights = {h: rng.integers(-63, 64, (128, 256)) for h in (0, 1)}
    # rows 0 and 4 of synram 0 share PADI bus 0 (dead time 3 cycles by default)
    labels = np.array([(0 << 11) | (0 << 6) | 7, (0 << 11) | (1 << 6) | 9, (1 << 11) | (0 << 6) | 5])
    words = np.concatenate([
        wire.encode_timer_reset(), wire.encode_write([REGISTER_MAP["neuron_reset"].base], [3]),
        wire.encode_spikes(labels, 5), wire.encode_wait_until([500]), wire.encode_read_block(hagen.cadc_row_address(0), 64),
    ]).astype(np.uint64)
    for which in ("numba", "numpy"):
        with kernels.use(which):
            emulator = Emulator(seed=1)
            emulator.execute(hagen.hagen_config_words(weights))
            assert fastpath.execute_hagen(emulator, words) is None
            # a label whose driver receives, but not in hagen mode (no hagen modulation or DAC)
            spiking_driver = 1 | (1 << 1) | (2 << 3) | (31 << 5)
            emulator.execute(wire.encode_write([REGISTER_MAP["synapse_driver_config"].base], [spiking_driver]))
            ok = hagen.hagen_input_words({0: np.full((2, 128), 3)})
            assert fastpath.execute_hagen(emulator, ok) is None


def _shape_fields(shape):
    if shape is None:
        return None
    return {name: np.asarray(getattr(shape, name)).tolist() for name in shape.__slots__ if name != "other"}


@needs_numba
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_compiled_recogniser_recognises_what_the_numpy_recogniser_does(data):
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    x = {h: rng.integers(0, 32, (3, 128)) * (rng.random((3, 128)) < 0.3) for h in (0, 1)}
    words = hagen.hagen_input_words(x, num_sends=data.draw(st.integers(1, 2)), end_cookie=data.draw(st.sampled_from([None, 5])))
    for _ in range(data.draw(st.integers(0, 3))):  # flip bits of some words (opcodes, counts, delays, labels)
        i = data.draw(st.integers(0, words.size - 1))
        words[i] ^= np.uint64(1) << np.uint64(data.draw(st.integers(0, 63)))
    if data.draw(st.booleans()):  # cut, or append a word
        words = words[: data.draw(st.integers(0, words.size))] if data.draw(st.booleans()) else np.append(words, words[:1])
    with kernels.use("numpy"):
        expected = _shape_fields(fastpath.recognise(words))
    assert _shape_fields(fastpath.recognise(words)) == expected


@needs_numba
@settings(max_examples=80, deadline=None)
@given(data=st.data())
def test_compiled_program_pass_equals_recognise_checks_and_timeline(data):
    """kernels.program (one call) accepts and declines what recognise, the read checks and the numpy timeline
    do, with the same structure and the same timeline."""
    from bss2.hal.regmap import REGISTER_MAP

    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    synrams = data.draw(st.sampled_from([(0,), (1,), (0, 1)]))
    x = {h: rng.integers(0, 32, (data.draw(st.integers(1, 4)), 128)) * (rng.random((1, 128)) < 0.3) for h in synrams}
    batch = min(v.shape[0] for v in x.values())
    words = hagen.hagen_input_words({h: v[:batch] for h, v in x.items()}, num_sends=data.draw(st.integers(1, 2)),
                                    wait_between_events=data.draw(st.sampled_from([0, 1, 5])),
                                    end_cookie=data.draw(st.sampled_from([None, 5])))
    ops = words >> np.uint64(56)
    reads = np.flatnonzero(ops == wire.Opcode.READ_BLOCK)
    resets = np.flatnonzero(ops == wire.Opcode.WRITE)
    base = REGISTER_MAP["cadc_sample_quad"].base
    for _ in range(data.draw(st.integers(0, 2))):  # move or resize every vector's k-th read alike
        k = data.draw(st.integers(0, len(synrams) - 1))
        address = base + data.draw(st.sampled_from([0, 64, 128, 192, 256, 32, -64]))
        count = data.draw(st.sampled_from([64, 64, 63]))
        words[reads[k :: len(synrams)]] = wire.encode_read_block(address, count)[0] if address >= 0 else words[reads[k]] - (
            np.uint64(64) << np.uint64(32))
    if data.draw(st.booleans()):  # reset other quadrants (in every vector)
        q = data.draw(st.integers(0, 15))
        words[resets] = wire.encode_write([REGISTER_MAP["neuron_reset"].base], [q])[0]
    for _ in range(data.draw(st.integers(0, 2))):  # flip bits of some words
        i = data.draw(st.integers(0, words.size - 1))
        words[i] ^= np.uint64(1) << np.uint64(data.draw(st.integers(0, 63)))
    emulator = Emulator(seed=2)
    core = emulator.core
    params = core.params(emulator.memory, emulator.time)
    context = fastpath._context(emulator, params, core.routing(emulator.memory))
    args = (core, words, context, 8.0, 40.0, float(data.draw(st.sampled_from([0, 3, 40]))),
            data.draw(st.sampled_from([0.0, 3.7e-5])), data.draw(st.floats(0, 1e9)))
    with kernels.use("numpy"):
        expected = fastpath._program_numpy(*args)
    got = fastpath._program_compiled(*args)
    assert (got is None) == (expected is None)
    if expected is not None:
        assert _shape_fields(got[0]) == _shape_fields(expected[0])
        for a, b in zip(got[1], expected[1]):
            if b is None:
                assert a is None
            else:
                np.testing.assert_array_equal(a, b)


@needs_numba
def test_compiled_effective_weights_equal_the_numpy_formula():
    from bss2.hal.emulator.analog import hagen_coefficients, hagen_weights

    rng = np.random.default_rng(14)
    emulator = Emulator(seed=5)
    core = emulator.core
    memory = emulator.memory
    params = core.params(memory, emulator.time)
    weights = rng.integers(0, 256, (2, 256, 256)).astype(np.uint8)  # bits 7..6 (the label side) ignored
    drivers = rng.integers(0, 1 << 16, 256)  # every row mode, offset and flag combination
    coefficients = hagen_coefficients(emulator.config, core.pattern, params, drivers)
    results = []
    for which in ("numba", "numpy"):
        with kernels.use(which):
            results.append(hagen_weights(weights, coefficients))
    assert results[0].dtype == np.float32 and results[0].shape == (2, 128, 256)
    np.testing.assert_array_equal(results[0], results[1])


def test_effective_weight_follows_row_modes_gains_and_driver_scale():
    """CHIP.md: a driver's two rows add their weight times the pulse length into the column; a row's mode
    picks the excitatory gain, minus the inhibitory one, or both, or nothing."""
    from bss2.hal.emulator.analog import driver_scale, hagen_coefficients, hagen_weights

    rng = np.random.default_rng(16)
    emulator = Emulator(seed=6)
    core = emulator.core
    params = core.params(emulator.memory, emulator.time)
    weights = rng.integers(0, 256, (2, 256, 256)).astype(np.uint8)
    drivers = rng.integers(0, 1 << 16, 256)
    effective = hagen_weights(weights, hagen_coefficients(emulator.config, core.pattern, params, drivers))
    scale = driver_scale(emulator.config, core.pattern, drivers).reshape(2, 128)
    exc, inh = params.hagen_exc.reshape(2, 256), params.hagen_inh.reshape(2, 256)
    for h, r in [(0, 0), (0, 77), (1, 5), (1, 127)]:
        expected = np.zeros(256)
        for half, shift in ((0, 1), (1, 3)):
            mode = (int(drivers[128 * h + r]) >> shift) & 3
            sign_gain = (mode & 1) * exc[h] - (mode >> 1) * inh[h]
            row = 2 * r + half
            expected += (weights[h, row] & 63) * core.pattern.synapse[h, row].astype(np.float64) * sign_gain
        np.testing.assert_allclose(effective[h, r], expected * scale[h, r], rtol=1e-6, atol=1e-9)


@needs_numba
@pytest.mark.parametrize("config", [EmulatorConfig.default(), EmulatorConfig.ideal()], ids=["default", "ideal"])
def test_weight_updates_before_vectors_take_the_same_effect_in_one_pass(config):
    from bss2.hal.regmap import REGISTER_MAP

    rng = np.random.default_rng(15)
    weights = [{h: rng.integers(-63, 64, (128, 256)) for h in (0, 1)} for _ in range(2)]
    x = {h: rng.integers(0, 32, (20, 128)) for h in (0, 1)}
    vectors = hagen.hagen_input_words(x, end_cookie=2)
    update = np.concatenate([hagen.hagen_synapse_words(h, weights[1][h]) for h in (0, 1)])
    single = wire.encode_write([REGISTER_MAP["synapse_quad"].base + 5] * 2, [0x01020304, 0x3F3F3F3F])  # last wins
    programs = [np.concatenate((update, single, vectors)).astype(np.uint64),
                np.concatenate((update[:-1], vectors)).astype(np.uint64)]  # a truncated block: general path
    results = []
    for which in ("numba", "numpy"):
        with kernels.use(which):
            emulator = Emulator(seed=4, config=config)
            emulator.execute(hagen.hagen_config_words(weights[0]))
            results.append(([emulator.execute(p) for p in programs], emulator))
    (a, ea), (b, eb) = results
    for x_, y_ in zip(a, b):
        np.testing.assert_array_equal(x_, y_)
    assert ea.time == eb.time and ea.last_timing == eb.last_timing
    np.testing.assert_array_equal(ea.memory, eb.memory)


@needs_numba
def test_write_prefix_rejects_what_it_cannot_store_and_changes_nothing():
    from bss2.hal.regmap import REGISTER_MAP

    lo, hi = REGISTER_MAP["synapse_quad"].base, REGISTER_MAP["synapse_quad"].last_address
    ops = (int(wire.Opcode.WRITE), int(wire.Opcode.WRITE_BLOCK))
    memory = np.zeros(hi + 1, np.uint32)
    block = wire.encode_write_block(lo, np.arange(5))
    assert kernels.write_prefix(block, ops, lo, hi) == (block.size, 1, 3)
    outside = np.concatenate((block, wire.encode_write([lo - 1], [1])))
    assert kernels.write_prefix(outside, ops, lo, hi, memory) == (-1, 0, 0) and not memory.any()
    assert kernels.write_prefix(block[:-1], ops, lo, hi, memory) == (-1, 0, 0) and not memory.any()
    assert kernels.write_prefix(np.concatenate((block, wire.encode_timer_reset())), ops, lo, hi, memory) == (block.size, 1, 3)
    np.testing.assert_array_equal(memory[lo : lo + 6], [0, 1, 2, 3, 4, 0])


@needs_numba
def test_store_writes_checks_every_part_first_and_keeps_program_order():
    from bss2.hal.regmap import REGISTER_MAP

    lo, hi = REGISTER_MAP["synapse_quad"].base, REGISTER_MAP["synapse_quad"].last_address
    ops = (int(wire.Opcode.WRITE), int(wire.Opcode.WRITE_BLOCK))
    memory = np.zeros(hi + 1, np.uint32)
    first = wire.encode_write_block(lo, np.arange(1, 6))  # odd count: the last data word carries one register
    second = np.concatenate((wire.encode_write([lo + 1], [70]), wire.encode_write_block(lo + 4, [80, 81])))
    second.flags.writeable = False  # parts of both kinds in one call
    bad = wire.encode_write([lo - 1], [9])
    assert kernels.store_writes((first, second, bad), ops, lo, hi, memory) is None and not memory.any()
    assert kernels.store_writes((first, second[:-1]), ops, lo, hi, memory) is None and not memory.any()  # truncated
    assert kernels.store_writes((first, second), ops, lo, hi, memory) == (3, 3 + 1)
    np.testing.assert_array_equal(memory[lo : lo + 7], [1, 70, 3, 4, 80, 81, 0])  # the later part wins


@needs_numba
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_mutated_programs_run_the_same_with_kernels_and_numpy(data):
    """Differential fuzz: canonical programs with flipped bits, cut or extended, behind a weight update."""
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    weights = {h: rng.integers(-63, 64, (128, 256)) for h in (0, 1)}
    x = {h: rng.integers(0, 32, (4, 128)) * (rng.random((4, 128)) < 0.5) for h in (0, 1)}
    words = hagen.hagen_input_words(x, num_sends=data.draw(st.integers(1, 3)), end_cookie=7)
    if data.draw(st.booleans()):
        words = np.concatenate((hagen.hagen_synapse_words(1, weights[1])[:40], words))
    for _ in range(data.draw(st.integers(0, 4))):
        i = data.draw(st.integers(0, words.size - 1))
        words[i] ^= np.uint64(1) << np.uint64(data.draw(st.integers(0, 63)))
    words = words[: data.draw(st.integers(1, words.size))]
    results = []
    for which in ("numba", "numpy"):
        with kernels.use(which):
            emulator = Emulator(seed=2)
            emulator.execute(hagen.hagen_config_words(weights))
            results.append((emulator.execute(words), emulator))
    (a, ea), (b, eb) = results
    np.testing.assert_array_equal(a, b)
    assert ea.time == eb.time
    np.testing.assert_array_equal(ea.memory, eb.memory)


@needs_numba
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_compiled_timeline_equals_the_numpy_passes(data):
    n = data.draw(st.integers(1, 700))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    n_spikes = rng.integers(0, 120, n)
    vector_start = np.cumsum(rng.integers(3, 130, n)) - 3
    vector_end = vector_start + n_spikes + rng.integers(3, 8, n)
    first_spike = vector_start + 2
    targets = rng.integers(0, 2000, n).astype(np.float64) * data.draw(st.sampled_from([0.0, 1.0]))
    rate = data.draw(st.sampled_from([0.0, 1e-6, 3.7e-5]))
    chunk = data.draw(st.sampled_from([1, 7, 256]))
    args = (n_spikes, targets, first_spike, vector_start, vector_end, 5.0, 11.0, 1.0, 133.0,
            data.draw(st.floats(0, 1e9)), float(data.draw(st.integers(0, 63))), rate, chunk)
    compiled, reference = kernels.timeline(*args), fastpath._timeline_numpy(*args)
    for got, expected in zip(compiled, reference):
        if expected is None:
            assert got is None
        else:
            np.testing.assert_array_equal(got, expected)


def test_effective_weights_follow_driver_and_capmem_writes():
    """The cached effective weights (and their coefficients) are redone when a driver's configuration or the
    neurons' CapMem change, not only when synapses are written."""
    from bss2.hal.emulator.analog import hagen_coefficients, hagen_weights
    from bss2.hal.regmap import REGISTER_MAP

    rng = np.random.default_rng(17)
    weights = {h: rng.integers(-63, 64, (128, 256)) for h in (0, 1)}
    emulator = Emulator(seed=9)
    core, memory = emulator.core, emulator.memory
    emulator.execute(hagen.hagen_config_words(weights))

    def fresh() -> np.ndarray:
        memory = emulator.memory
        params = core.params(memory, emulator.time)
        base = REGISTER_MAP["synapse_quad"].base
        raw = memory[base : base + 32768].view(np.uint8).reshape(2, 256, 256)
        return hagen_weights(raw, hagen_coefficients(emulator.config, core.pattern, params, core._driver_words(memory)))

    before = core.hagen_weights(memory, core.params(memory, emulator.time))
    np.testing.assert_array_equal(before, fresh())
    driver = REGISTER_MAP["synapse_driver_config"].base + 5
    word = int(memory[driver])
    emulator.execute(np.concatenate((wire.encode_write([driver], [(word & ~(15 << 12)) | (((word >> 12) + 5) & 15) << 12]),
                                     wire.encode_end(1))))  # driver 5's pulse-length offset
    after = core.hagen_weights(emulator.memory, core.params(emulator.memory, emulator.time))
    np.testing.assert_array_equal(after, fresh())
    assert not np.array_equal(after[0, 5], before[0, 5]) and np.array_equal(after[0, 6], before[0, 6])
    gm = np.full(512, 700)
    emulator.execute(hagen.hagen_config_words(weights, neuron_capmem={"i_bias_syn_exc_gm": gm, "i_bias_syn_inh_gm": gm}))
    stronger = core.hagen_weights(emulator.memory, core.params(emulator.memory, emulator.time))
    np.testing.assert_array_equal(stronger, fresh())
    assert np.abs(stronger).mean() > 1.2 * np.abs(after).mean()
