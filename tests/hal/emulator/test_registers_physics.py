"""Register-level features of the analog core: injection, counters, quadrant resets, CADC offsets."""

import numpy as np
from regs import cadc_read, neuron_capmem_words, samples, word, write

from bss2.hal import hagen, wire
from bss2.hal.emulator import Emulator, EmulatorConfig
from bss2.hal.regmap import REGISTER_MAP


def node(i, o):
    return i * 12 + o


def run(emulator, *parts):
    return emulator.execute(np.concatenate([np.atleast_1d(p) for p in parts]))


def test_spike_injection_register_and_fpga_loopback_are_recorded_and_counted():
    emulator = Emulator(seed=1)
    run(
        emulator,
        write("crossbar_node", node(9, 10), 0, mask=0xC000, target=0x4000), write("crossbar_node", node(9, 10), 1, enable=True),
        write("crossbar_output_config", enable_event_counter=[False] * 10 + [True, False]),
    )
    counter = REGISTER_MAP["crossbar_output_event_counter"].address(10)
    decoded = wire.decode_responses(run(
        emulator, wire.encode_timer_reset(),
        write("spike_injection", label=0x4123),  # FPGA channel 1 -> crossbar input 9
        wire.encode_spikes([0x4001, 0x0002, 0x4003]),  # the label in channel 0 does not pass
        wire.encode_read([counter]), wire.encode_end(0),
    ))
    assert decoded.spike_labels.tolist() == [0x4123, 0x4001, 0x4003]
    assert decoded.spike_times.tolist() == sorted(decoded.spike_times.tolist())
    assert decoded.read_data.tolist() == [3]


def test_recording_can_be_disabled():
    emulator = Emulator(seed=1)
    run(emulator, write("crossbar_node", node(8, 8), 1, enable=True), write("event_recording_config", enable=False))
    decoded = wire.decode_responses(run(emulator, wire.encode_spikes([1, 2, 3]), wire.encode_end(0)))
    assert decoded.spike_labels.size == 0


def configured_hagen(config=None):
    emulator = Emulator(seed=2, config=config or EmulatorConfig.ideal())
    emulator.execute(hagen.hagen_config_words({0: np.full((128, 256), 10)}))
    return emulator


def test_neuron_reset_acts_on_the_selected_quadrants_only():
    emulator = configured_hagen()
    x = {0: np.full((1, 128), 10)}
    emulator.execute(hagen.hagen_input_words(x))  # membranes now hold 0.002 * 128 * 10 * 10 = 25.6 LSB
    s = samples(run(emulator, write("neuron_reset", quadrants=[True, False, False, False]), cadc_read(0)))[0]
    assert np.all(s[:128] == 128) and np.all(s[128:] == 128 + 25)


def test_cadc_channel_offsets_add_to_the_samples():
    emulator = configured_hagen()
    offsets = np.arange(256) % 16 - 8
    block = REGISTER_MAP["cadc_channel_config"]
    run(emulator, wire.encode_write(block.base + np.arange(256), offsets & 0xFF))
    s = samples(run(emulator, write("neuron_reset", quadrants=[True] * 4), cadc_read(0)))[0]
    assert np.array_equal(s, 128 + offsets)


def test_acausal_row_reads_the_same_membranes():
    emulator = configured_hagen()
    y = samples(run(emulator, write("neuron_reset", quadrants=[True] * 4),
                    wire.encode_read_block(hagen.cadc_row_address(0, acausal=True), 64)))[0]
    assert np.all(y == 128)


def test_disabled_cadc_reads_zero():
    emulator = configured_hagen()
    run(emulator, write("cadc_config", 0, enable=False))
    assert not samples(run(emulator, cadc_read(0))).any()


def test_enabling_the_leak_during_integration_loses_charge():
    """Hagen pulses into leaky membranes (the time-stepped path) decay with tau_mem."""
    emulator = configured_hagen()
    x = {0: np.full((2, 128), 10)}
    ideal = hagen.decode_hagen_responses(emulator.execute(hagen.hagen_input_words(x, wait_between_events=40)), [0], 2)[0]
    neuron = word("neuron_config", enable_synaptic_input_excitatory=True, enable_synaptic_input_inhibitory=True, enable_leak=True)
    # leak towards the reset potential, so that only the decay of the integrated charge shows
    run(emulator, neuron_capmem_words("v_leak", np.full(512, 300)), wire.encode_timer_reset(), wire.encode_wait_until([2_500_000]))
    run(emulator, wire.encode_write(REGISTER_MAP["neuron_config"].base + np.arange(256), np.full(256, neuron)))
    leaky = hagen.decode_hagen_responses(emulator.execute(hagen.hagen_input_words(x, wait_between_events=40)), [0], 2)[0]
    assert np.all(ideal == 25)
    assert np.all(leaky < 15)  # about 28 us of integration with tau_mem = 10 us
