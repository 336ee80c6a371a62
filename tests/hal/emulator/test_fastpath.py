"""The dedicated hagen fast path computes what the general path computes (same physics, same responses)."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bss2.hal import hagen, wire
from bss2.hal.emulator import Emulator, EmulatorConfig
from bss2.hal.emulator.fastpath import recognise


def pair(config, weights, programs, seed=1):
    """Responses and final state of the same programs with and without the fast path."""
    results = []
    for fast in (True, False):
        emulator = Emulator(seed=seed, config=config)
        emulator.fast_path = fast
        emulator.execute(hagen.hagen_config_words(weights))
        responses = [emulator.execute(p) for p in programs]
        results.append((responses, emulator))
    return results


def inputs(rng, batch, sparse=False):
    x = {h: rng.integers(0, 32, (batch, 128)) for h in (0, 1)}
    if sparse:
        for h in (0, 1):
            x[h][rng.random((batch, 128)) < 0.7] = 0
        x[0][:3] = 0
    return x


@pytest.fixture(scope="module")
def weights():
    rng = np.random.default_rng(5)
    return {h: rng.integers(-63, 64, (128, 256)) for h in (0, 1)}


@pytest.mark.parametrize("config", [EmulatorConfig.ideal(), EmulatorConfig.default().evolve(noise_lsb=0.0)], ids=["ideal", "noiseless"])
def test_fast_path_matches_general_path_exactly(config, weights):
    rng = np.random.default_rng(0)
    x = inputs(rng, 700)
    xs = inputs(rng, 40, sparse=True)
    programs = [
        hagen.hagen_input_words(x, end_cookie=3),
        hagen.hagen_input_words(xs),
        hagen.hagen_input_words({0: x[0][:50]}, num_sends=2, end_cookie=4),
        hagen.hagen_input_words({1: xs[1]}, wait_between_events=9),
        hagen.hagen_input_words(x, end_cookie=5),  # again: state carried over from the programs before
    ]
    assert all(recognise(p) is not None for p in programs)
    (fast, a), (general, b) = pair(config, weights, programs)
    for f, g in zip(fast, general):
        np.testing.assert_array_equal(f, g)
    assert a.time == b.time and a.timer_zero == b.timer_zero and a.core.t_state == b.core.t_state
    assert a.last_timing == b.last_timing
    np.testing.assert_array_equal(a.memory, b.memory)
    np.testing.assert_allclose(a.core.v, b.core.v, atol=1e-3)


def test_fast_path_noise_has_the_documented_statistics(weights):
    rng = np.random.default_rng(1)
    x = inputs(rng, 400)
    program = hagen.hagen_input_words(x, end_cookie=1)
    (fast, _), (general, _) = pair(EmulatorConfig.default(), weights, [program, program])
    yf = [hagen.decode_hagen_responses(r, (0, 1), 400) for r in fast]
    yg = [hagen.decode_hagen_responses(r, (0, 1), 400) for r in general]
    for h in (0, 1):
        fresh = yf[0][h].astype(np.float64) - yf[1][h]
        assert abs(fresh.mean()) < 0.05
        assert 2.5 < fresh.std() < 3.2  # two independent draws of 2 LSB noise (plus quantisation)
        assert abs(yf[0][h].astype(np.float64).mean() - yg[0][h].mean()) < 0.05


def test_other_programs_are_left_to_the_general_path(weights):
    rng = np.random.default_rng(2)
    x = inputs(rng, 5)
    words = hagen.hagen_input_words(x, end_cookie=1)
    assert recognise(words) is not None
    malformed = words.copy()
    spikes = np.flatnonzero((words >> np.uint64(56)) == wire.Opcode.SPIKES)
    malformed[spikes[3]] &= ~np.uint64(3 << 48)  # count 0
    mixed_delays = words.copy()
    mixed_delays[spikes[4]] |= np.uint64(7 << 50)
    extra = np.concatenate((words[:-1], wire.encode_read([0]), words[-1:]))
    for variant in (malformed, extra):
        (fast, _), (general, _) = pair(EmulatorConfig.ideal(), weights, [variant])
        np.testing.assert_array_equal(fast[0], general[0])
    assert recognise(mixed_delays) is None and recognise(extra) is None
    assert recognise(words.astype(np.int64)) is None


def _program(x, reads, quadrants, delay=5, end=True):
    """Hand-built canonical program: per vector reset of ``quadrants``, the labels of ``x`` (both synrams),
    a wait and ``reads`` (CADC row addresses)."""
    from bss2.hal.regmap import REGISTER_MAP

    parts = []
    rows = np.arange(128)
    for v in range(x[0].shape[0]):
        labels = []
        for h in (0, 1):
            nz = np.flatnonzero(x[h][v])
            labels.append((h << 13) | ((rows[nz] % 4) << 11) | ((rows[nz] // 4) << 6) | x[h][v][nz])
        labels = np.concatenate(labels)
        spikes = wire.encode_spikes(labels, delay, group=1) if labels.size else np.zeros(0, np.uint64)
        parts += [
            wire.encode_timer_reset(),
            wire.encode_write([REGISTER_MAP["neuron_reset"].base], [quadrants]),
            spikes,
            wire.encode_wait_until([2000]),
        ] + [wire.encode_read_block(a, 64) for a in reads]
    if end:
        parts.append(wire.encode_end(9))
    return np.concatenate(parts).astype(np.uint64)


@pytest.mark.parametrize("config", [EmulatorConfig.ideal(), EmulatorConfig.default().evolve(noise_lsb=0.0)], ids=["ideal", "noiseless"])
def test_hand_built_variants_match_the_general_path(config, weights):
    rng = np.random.default_rng(3)
    x = {h: rng.integers(0, 32, (6, 128)) * (rng.random((6, 128)) < 0.2) for h in (0, 1)}
    x[1][2] = 0
    row = hagen.cadc_row_address
    programs = [
        _program(x, [row(1), row(0, acausal=True), row(0)], 15),  # reads out of order, an acausal row
        _program({0: x[0], 1: 0 * x[1]}, [row(0)], 3, delay=12, end=False),  # synram 1 neither reset nor driven
        _program(x, [row(1)], 15),  # synram 0 driven and reset but never read
    ]
    assert all(recognise(p) is not None for p in programs)
    (fast, a), (general, b) = pair(config, weights, programs)
    for f, g in zip(fast, general):
        np.testing.assert_array_equal(f, g)
    assert a.time == b.time and a.timer_zero == b.timer_zero and a.last_timing == b.last_timing
    np.testing.assert_array_equal(a.memory, b.memory)
    np.testing.assert_allclose(a.core.v, b.core.v, atol=1e-3)


def test_two_labels_for_one_bus_in_a_word_go_to_the_general_path(weights):
    from bss2.hal.emulator import fastpath
    from bss2.hal.regmap import REGISTER_MAP

    # rows 0 and 4 of synram 0 share PADI bus 0; with the default 3-cycle dead time the general path draws losses
    labels = np.array([(0 << 11) | (0 << 6) | 7, (0 << 11) | (1 << 6) | 9, (1 << 11) | (0 << 6) | 5])
    words = np.concatenate([
        wire.encode_timer_reset(), wire.encode_write([REGISTER_MAP["neuron_reset"].base], [3]),
        wire.encode_spikes(labels, 5), wire.encode_wait_until([500]), wire.encode_read_block(hagen.cadc_row_address(0), 64),
    ]).astype(np.uint64)
    assert recognise(words) is not None
    emulator = Emulator(seed=1)
    emulator.execute(hagen.hagen_config_words(weights))
    assert fastpath.execute_hagen(emulator, words) is None
    separate = np.concatenate([words[:2], wire.encode_spikes(labels[[0, 2, 1]], 5, group=2), words[3:]]).astype(np.uint64)
    assert fastpath.execute_hagen(emulator, separate) is not None  # the two bus-0 labels in different words


@pytest.mark.parametrize("config", [EmulatorConfig.ideal(), EmulatorConfig.default().evolve(noise_lsb=0.0)], ids=["ideal", "noiseless"])
def test_fast_path_follows_register_writes_and_membrane_reads_between_programs(config, weights):
    """What the fast path derives once from the registers (CADC timing, enables, channel offsets) follows
    every later register write, and the membranes it leaves behind are what a later conversion reads."""
    from bss2.hal.regmap import REGISTER_MAP

    rng = np.random.default_rng(8)
    channel, cadc, samples = (REGISTER_MAP[name].base for name in ("cadc_channel_config", "cadc_config", "cadc_sample_quad"))

    def vectors(batch):
        return hagen.hagen_input_words(inputs(rng, batch), end_cookie=int(rng.integers(1, 1000)))

    programs = [
        vectors(30),
        np.concatenate((wire.encode_read(samples + 64 * np.arange(4)), wire.encode_end(11))),  # convert the rows now
        np.concatenate((wire.encode_write(channel + np.arange(1024), rng.integers(-20, 21, 1024) & 0xFF), wire.encode_end(12))),
        vectors(25),
        np.concatenate((wire.encode_write([cadc + 1], [1 | 7 << 8 | 3 << 16]), wire.encode_end(13))),  # longer conversion
        vectors(20),
        np.concatenate((wire.encode_write([cadc], [0]), wire.encode_end(14))),  # hemisphere 0's CADC off
        vectors(10),
        np.concatenate((wire.encode_read(samples + 64 * np.arange(4)), wire.encode_end(15))),
    ]
    (fast, a), (general, b) = pair(config, weights, programs, seed=3)
    for f, g in zip(fast, general):
        np.testing.assert_array_equal(f, g)
    assert a.time == b.time and a.core.t_state == b.core.t_state
    np.testing.assert_array_equal(a.memory, b.memory)
    np.testing.assert_allclose(a.core.v, b.core.v, atol=1e-3)


def _agree_to_rounding(fast, general) -> None:
    """Responses of the same length whose bytes differ by at most 1 (a sample one code apart), in at most one
    byte per thousand (at least one)."""
    for f, g in zip(fast, general, strict=True):
        assert f.shape == g.shape
        fb, gb = f.view(np.uint8).astype(int), g.view(np.uint8).astype(int)
        assert np.abs(fb - gb).max(initial=0) <= 1
        assert np.count_nonzero(fb != gb) <= max(1, fb.size // 1000)


_REGISTER_BLOCKS = ("cadc_config", "cadc_channel_config", "synapse_driver_config", "neuron_config",
                    "neuron_backend_config", "padi_bus_config", "crossbar_node", "background_spike_source")


@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_fast_path_equals_general_path_under_random_register_writes(data, weights):
    """Differential: random writes into the blocks the fast path derives its context from (or that make it
    step aside), between MAC programs, give the same responses and state with and without the fast path."""
    from bss2.hal.regmap import REGISTER_MAP

    rng = np.random.default_rng(data.draw(st.integers(0, 2**31), label="seed"))
    programs = []
    for _ in range(data.draw(st.integers(1, 3), label="rounds")):
        block = REGISTER_MAP[data.draw(st.sampled_from(_REGISTER_BLOCKS), label="block")]
        n = int(block.last_address - block.base + 1)
        addresses = block.base + rng.choice(n, size=min(n, data.draw(st.integers(1, 4), label="writes")), replace=False)
        values = rng.integers(0, 1 << 32, addresses.size, dtype=np.uint64)
        if data.draw(st.booleans(), label="low bits only"):
            values &= np.uint64(0xFFFF)
        programs.append(np.concatenate((wire.encode_write(addresses, values), wire.encode_end(1))))
        programs.append(hagen.hagen_input_words(inputs(rng, data.draw(st.integers(1, 12), label="batch")), end_cookie=2))
    (fast, a), (general, b) = pair(EmulatorConfig.default().evolve(noise_lsb=0.0), weights, programs, seed=4)
    # random channel offsets can put a sample within float rounding of a code boundary (hypothesis found one:
    # seed 49, three cadc_channel_config writes, batch 7), where the matmul's float32 sums and the general
    # path's float64 event sums truncate to neighbouring codes
    _agree_to_rounding(fast, general)
    assert a.time == b.time
    np.testing.assert_array_equal(a.memory, b.memory)


def test_a_strong_parasitic_leak_decays_every_read_as_the_general_path_does(weights):
    # with a 20 us leak the second read of a vector (one CADC conversion after the first) has lost a few
    # percent more charge; the fast path applies that decay to the swing, the general path sums each event's
    # own decay in float64: the samples agree up to float rounding at a code boundary
    config = EmulatorConfig.default().evolve(noise_lsb=0.0, parasitic_leak_tau_us=20.0)
    rng = np.random.default_rng(3)
    x = inputs(rng, 300)
    programs = [hagen.hagen_input_words(x, end_cookie=7), hagen.hagen_input_words(x, num_sends=2, wait_between_events=30)]
    (fast, a), (general, b) = pair(config, weights, programs)
    _agree_to_rounding(fast, general)
    undecayed = pair(config.evolve(parasitic_leak_tau_us=math.inf), weights, programs[:1])[0][0][0]
    assert np.count_nonzero(undecayed.view(np.uint8) != fast[0].view(np.uint8)) > fast[0].size  # the leak shows
