"""Spiking operation: LIF neurons, synaptic labels, crossbar masks, background sources, recurrence, MADC."""

import numpy as np
import pytest
from regs import address, cadc_read, neuron_capmem_words, samples, word, write

from bss2.hal import hagen, wire
from bss2.hal.emulator import Emulator, EmulatorConfig
from bss2.hal.regmap import REGISTER_MAP

SYNAPSES = REGISTER_MAP["synapse_quad"].base
CYCLES_PER_US = 125


def node(i, o):
    return i * 12 + o


def run(emulator, *parts):
    return emulator.execute(np.concatenate([np.atleast_1d(p) for p in parts]))


def configure(emulator, threshold_code=420, refractory=125, leak=True):
    """Nominal CapMem, every neuron a LIF neuron with excitatory input, spikes recorded via output 8."""
    addresses, values = hagen.capmem_nominal_words()
    neuron = word("neuron_config", enable_leak=leak, enable_synaptic_input_excitatory=True, enable_threshold=True, enable_fire=True, enable_readout=True)
    backend = np.array([word("neuron_backend_config", enable_spike_out=True, address_out=j % 64 + 1, refractory_time=refractory) for j in range(512)])
    # CapMem first and let it settle: neurons enabled on unsettled parameters would fire all along
    run(
        emulator,
        wire.encode_timer_reset(),
        wire.encode_write_block(int(addresses[0]), values),
        neuron_capmem_words("v_threshold", np.full(512, threshold_code)),
        wire.encode_wait_until([2_500_000]),
    )
    run(
        emulator,
        wire.encode_write(REGISTER_MAP["neuron_config"].base + np.arange(512), np.full(512, neuron)),
        wire.encode_write(REGISTER_MAP["neuron_backend_config"].base + np.arange(512), backend),
        write("cadc_config", 0, enable=True),
        # neuron event output 0 (columns 0..63 of the top row) -> FPGA output 8
        write("crossbar_node", node(0, 8), 0, mask=0, target=0), write("crossbar_node", node(0, 8), 1, enable=True),
    )


def connect_input(emulator, label=5, weight=63, synapse_label=5, column=0, mask=0xFFFF):
    """FPGA label -> crossbar input 8 -> bus 0 -> driver 0 -> row 0 (excitatory) -> synapse of ``column``."""
    quad = column // 4
    weights = np.zeros(4, np.uint8)
    weights[column % 4] = weight
    labels = np.zeros(4, np.uint8)
    labels[column % 4] = synapse_label
    run(
        emulator,
        write("crossbar_node", node(8, 0), 0, mask=mask, target=label & mask), write("crossbar_node", node(8, 0), 1, enable=True),
        write("padi_bus_config", 0, enable=True),
        write("synapse_driver_config", 0, enable_receiver=True, row_mode_top="excitatory"),
        wire.encode_write([SYNAPSES + quad, SYNAPSES + 32768 + quad], [int(weights.view("<u4")[0]), int(labels.view("<u4")[0])]),
    )


def spike_program(labels_times, until, reads=()):
    """Timer reset, neuron reset, events at absolute times, optional CADC reads, wait, END."""
    parts = [wire.encode_timer_reset(), write("neuron_reset", quadrants=[1, 1, 1, 1])]
    for label, t in labels_times:
        parts += [wire.encode_wait_until([t]), wire.encode_spikes([label])]
    for t in reads:
        parts += [wire.encode_wait_until([t]), cadc_read(0)]
    parts += [wire.encode_wait_until([until]), wire.encode_end(1)]
    return np.concatenate(parts)


@pytest.fixture
def ideal():
    emulator = Emulator(seed=3, config=EmulatorConfig.ideal())
    configure(emulator)
    return emulator


def test_membrane_relaxes_to_leak_potential_with_its_time_constant(ideal):
    run(ideal, neuron_capmem_words("v_threshold", np.full(512, 1000)))  # no spikes
    times = np.arange(1, 60) * CYCLES_PER_US
    s = samples(run(ideal, spike_program([], 8000, reads=times)))[:, :256].astype(float)
    v_leak, v_reset = 128 + 25, 128  # v_leak 400, v_reset 300 -> 0.25 LSB per code above 300
    assert np.allclose(s[-1], v_leak, atol=1.5)
    distance = v_leak - s[:20]  # first 20 us: well above quantisation
    t_us = times[:20] / CYCLES_PER_US
    tau = -1 / np.polyfit(t_us, np.log(np.maximum(distance.mean(1), 0.5)), 1)[0]
    assert 8.0 < tau < 12.0  # documented tau_mem 10 us at i_bias_leak 500


def test_time_constant_follows_the_leak_bias(ideal):
    run(ideal, neuron_capmem_words("v_threshold", np.full(512, 1000)))
    run(ideal, neuron_capmem_words("i_bias_leak", np.full(512, 1000)), wire.encode_timer_reset(), wire.encode_wait_until([2_500_000]))
    s = samples(run(ideal, spike_program([], 2000, reads=[5 * CYCLES_PER_US])))[0, :256]
    # tau 5 us: after 5 us 63 % of the way from reset (128) to leak (153)
    assert abs(s.mean() - (128 + 25 * (1 - np.exp(-1)))) < 1.5


def test_strong_input_makes_the_neuron_spike_once_then_refractory(ideal):
    connect_input(ideal, weight=63)
    decoded = wire.decode_responses(run(ideal, spike_program([(5, 6000)], 10000)))
    assert decoded.spike_labels.tolist() == [1]  # neuron 0: event output 0, address_out 1
    assert 6000 < decoded.spike_times[0] < 6000 + 5 * CYCLES_PER_US


def test_weak_input_does_not_spike(ideal):
    connect_input(ideal, weight=5)
    decoded = wire.decode_responses(run(ideal, spike_program([(5, 6000)], 10000)))
    assert decoded.spike_labels.size == 0


def test_refractory_period_limits_the_rate():
    intervals = {}
    for refractory in (60, 250):
        emulator = Emulator(seed=3, config=EmulatorConfig.ideal())
        configure(emulator, refractory=refractory)
        connect_input(emulator, weight=63)
        events = [(5, 6000 + 40 * k) for k in range(100)]  # a strong, dense drive
        decoded = wire.decode_responses(run(emulator, spike_program(events, 11000)))
        times = decoded.spike_times[decoded.spike_labels == 1].astype(float)
        assert times.size > 3
        intervals[refractory] = np.diff(times)
    assert intervals[250].min() >= 250 - 13  # one time step of tolerance
    assert intervals[60].mean() < intervals[250].mean()


def test_label_that_does_not_match_the_synapse_has_no_effect(ideal):
    connect_input(ideal, label=5, synapse_label=9, weight=63, mask=0)
    reads = [6500]
    baseline = samples(run(ideal, spike_program([], 8000, reads=reads)))[0, 0]
    decoded = run(ideal, spike_program([(5, 6000)], 8000, reads=reads))
    assert samples(decoded)[0, 0] == baseline
    assert wire.decode_responses(decoded).spike_labels.size == 0
    matching = run(ideal, spike_program([(9, 6000)], 8000, reads=reads))
    assert wire.decode_responses(matching).spike_labels.size == 1


def test_label_outside_the_crossbar_mask_has_no_effect(ideal):
    connect_input(ideal, label=5, synapse_label=5, weight=63, mask=0xFFFF)
    blocked = wire.decode_responses(run(ideal, spike_program([(5 | (1 << 8), 6000)], 8000)))  # same synapse label, other crossbar target
    assert blocked.spike_labels.size == 0
    passed = wire.decode_responses(run(ideal, spike_program([(5, 6000)], 8000)))
    assert passed.spike_labels.size == 1


@pytest.mark.parametrize("rate", [31, 127])
def test_poisson_background_source_has_its_configured_rate(rate):
    emulator = Emulator(seed=5)
    period = 50
    run(
        emulator,
        write("crossbar_node", node(12, 9), 0, mask=0, target=0), write("crossbar_node", node(12, 9), 1, enable=True),
        write("background_spike_source", 0, 1, seed=1234),
        write("background_spike_source", 0, 2, label=0x42),
        write("background_spike_source", 0, 0, enable=True, enable_random=True, rate=rate, period=period),
    )
    duration = 125_000  # 1 ms
    decoded = wire.decode_responses(run(emulator, wire.encode_timer_reset(), wire.encode_wait_until([duration]), wire.encode_end(0)))
    ticks = duration / period
    expected = ticks * (rate + 1) / 256
    sigma = np.sqrt(ticks * (rate + 1) / 256 * (1 - (rate + 1) / 256))
    assert abs(decoded.spike_labels.size - expected) < 4 * sigma
    assert set(decoded.spike_labels.tolist()) == {0x42}


def test_regular_background_source_ticks_every_period():
    emulator = Emulator(seed=5)
    run(
        emulator,
        write("crossbar_node", node(13, 8), 0, mask=0, target=0), write("crossbar_node", node(13, 8), 1, enable=True),
        write("background_spike_source", 1, 2, label=0x7, mask=0x3),
        write("background_spike_source", 1, 0, enable=True, period=400),
    )
    decoded = wire.decode_responses(run(emulator, wire.encode_wait_until([2**31 - 1])[:0], wire.encode_timer_reset(), wire.encode_wait_until([40_000]), wire.encode_end(0)))
    assert abs(decoded.spike_labels.size - 100) <= 1
    assert np.all(np.diff(decoded.spike_times.astype(int)) == 400)
    assert set(decoded.spike_labels.tolist()) <= {4, 5, 6, 7} and len(set(decoded.spike_labels.tolist())) > 1


def test_recurrent_chain_propagates_with_on_chip_latency(ideal):
    connect_input(ideal, label=5, weight=63, column=0)
    # neuron 0 (label 1 on event output 0) -> crossbar input 0 -> bus 1 -> driver 1 -> row 2 -> neuron 1
    run(
        ideal,
        write("crossbar_node", node(0, 1), 0, mask=0xFF, target=1), write("crossbar_node", node(0, 1), 1, enable=True),
        write("padi_bus_config", 1, enable=True),
        write("synapse_driver_config", 1, enable_receiver=True, row_mode_top="excitatory"),
        wire.encode_write([SYNAPSES + 2 * 64, SYNAPSES + 32768 + 2 * 64], [63 << 8, 1 << 8]),
    )
    decoded = wire.decode_responses(run(ideal, spike_program([(5, 6000)], 12000)))
    first = dict(zip(decoded.spike_labels.tolist()[::-1], decoded.spike_times.tolist()[::-1]))
    assert set(first) == {1, 2}
    latency = first[2] - first[1]
    assert EmulatorConfig.ideal().recurrent_latency_cycles <= latency < 5 * CYCLES_PER_US


def test_madc_samples_the_selected_membrane():
    emulator = Emulator(seed=3, config=EmulatorConfig.ideal())
    configure(emulator, threshold_code=1000)
    run(
        emulator,
        write("readout_source_selection", 0, neuron=0, enable=True),
        write("madc_config", 0, 0, enable=True, sample_period=125),
        write("madc_config", 0, 1, number_of_samples=40),
    )
    decoded = wire.decode_responses(run(emulator, spike_program([], 6000)[:-1], write("madc_control", start=True),
                                        wire.encode_wait_until([12000]), wire.encode_end(0)))
    assert decoded.madc_values.size == 40
    assert np.all(np.diff(decoded.madc_times.astype(int)) == 125)
    values = decoded.madc_values.astype(float)
    # 4 MADC LSB per CADC LSB around 512: the membrane sits at the leak potential (+25 CADC LSB)
    assert np.allclose(values, 512 + 4 * 25, atol=3)


def test_madc_follows_relaxation_after_reset():
    emulator = Emulator(seed=3, config=EmulatorConfig.ideal())
    configure(emulator, threshold_code=1000)
    run(emulator, write("readout_source_selection", 0, neuron=5, enable=True), write("madc_config", 0, 0, enable=True, sample_period=25),
        write("madc_config", 0, 1, number_of_samples=200))
    decoded = wire.decode_responses(run(
        emulator, wire.encode_timer_reset(), write("madc_control", start=True), write("neuron_reset", quadrants=[1, 1, 1, 1]),
        wire.encode_wait_until([6000]), wire.encode_end(0)))
    v = (decoded.madc_values.astype(float) - 512) / 4
    t_us = decoded.madc_times.astype(float) / CYCLES_PER_US
    late = t_us > 2
    tau = -1 / np.polyfit(t_us[late & (t_us < 25)], np.log(np.maximum(25 - v[late & (t_us < 25)], 0.3)), 1)[0]
    assert 8 < tau < 12


def test_recording_memory_keeps_the_earliest_records_and_reports_the_overflow():
    """defaults.yaml: at most ``recording_words`` spike and MADC records per program, the earliest first; a
    program that records more answers a RECORDING_OVERFLOW error before its END."""
    def dense(cap):
        emulator = Emulator(seed=3, config=EmulatorConfig.ideal().evolve(recording_words=cap))
        configure(emulator, refractory=60)
        connect_input(emulator, weight=63)
        run(emulator, write("readout_source_selection", 0, neuron=0, enable=True),
            write("madc_config", 0, 0, enable=True, sample_period=25), write("madc_config", 0, 1, number_of_samples=0))
        events = [(5, 6000 + 40 * k) for k in range(100)]  # the neuron fires again and again
        program = spike_program(events, 11000)
        program = np.concatenate((program[:2], write("madc_control", start=True), program[2:-1],
                                  write("madc_control", stop=True), program[-1:]))
        return wire.decode_responses(run(emulator, program))

    everything = dense(10**6)
    assert everything.error_codes.size == 0 and everything.spike_labels.size > 3
    all_times = np.sort(np.concatenate((everything.spike_times, everything.madc_times)).astype(np.int64))
    cap = int(np.searchsorted(all_times, everything.spike_times[2], side="right"))  # through the third spike
    kept = dense(cap)
    assert kept.error_codes.tolist() == [wire.ErrorCode.RECORDING_OVERFLOW]
    assert kept.end_cookies.tolist() == [1]
    assert kept.spike_labels.size + kept.madc_values.size == cap
    assert kept.spike_times.tolist() == everything.spike_times[:3].tolist()
    assert kept.madc_times.tolist() == everything.madc_times[: cap - 3].tolist()
    # per program: the next one records afresh
    emulator_ok = Emulator(seed=3, config=EmulatorConfig.ideal().evolve(recording_words=5))
    configure(emulator_ok)
    connect_input(emulator_ok, weight=63)
    for _ in range(2):
        decoded = wire.decode_responses(run(emulator_ok, spike_program([(5, 6000)], 10000)))
        assert decoded.spike_labels.tolist() == [1] and decoded.error_codes.size == 0


def test_a_long_continuous_madc_recording_stays_within_the_recording_memory():
    emulator = Emulator(seed=3, config=EmulatorConfig.ideal().evolve(recording_words=1000))
    configure(emulator, threshold_code=1000)
    run(emulator, write("readout_source_selection", 0, neuron=0, enable=True),
        write("madc_config", 0, 0, enable=True, sample_period=1), write("madc_config", 0, 1, number_of_samples=0))
    # 250,000 samples asked for (a 2 ms run, one sample per cycle): only the first 1000 are kept
    decoded = wire.decode_responses(run(emulator, wire.encode_timer_reset(), write("madc_control", start=True),
                                        wire.encode_wait_until([250_000]), write("madc_control", stop=True), wire.encode_end(4)))
    assert decoded.madc_values.size == 1000 and decoded.madc_times.tolist() == list(range(1, 1001))
    assert decoded.error_codes.tolist() == [wire.ErrorCode.RECORDING_OVERFLOW] and decoded.end_cookies.tolist() == [4]


def test_madc_samples_are_the_same_when_converted_in_chunks(monkeypatch):
    """The MADC conversion runs in chunks of samples to bound its memory; chunks (a multiple of 4 samples) must
    not change a reading, the noise included (the default configuration has MADC noise)."""
    from bss2.hal.emulator import dynamics

    def record():
        emulator = Emulator(seed=5)
        configure(emulator, threshold_code=1000)
        run(emulator, write("readout_source_selection", 0, neuron=3, enable=True),
            write("readout_source_selection", 1, neuron=7, enable=True),
            write("madc_config", 0, 0, enable=True, enable_dual_channel=True, sample_period=3),
            write("madc_config", 0, 1, number_of_samples=0))
        return wire.decode_responses(run(emulator, wire.encode_timer_reset(), write("madc_control", start=True),
                                         wire.encode_wait_until([3001]), write("madc_control", stop=True), wire.encode_end(1)))

    whole = record()
    monkeypatch.setattr(dynamics, "_MADC_CHUNK", 8)
    chunked = record()
    assert whole.madc_values.size == 1000 and np.unique(whole.madc_values).size > 3  # noisy readings
    assert set(whole.madc_channels.tolist()) == {0, 1}
    for field in ("madc_values", "madc_times", "madc_channels"):
        assert getattr(chunked, field).tolist() == getattr(whole, field).tolist()
