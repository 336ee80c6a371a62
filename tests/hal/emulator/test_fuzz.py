"""Nothing in an instruction stream crashes the emulator; every program ends consistently."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from bss2.hal import hagen, wire
from bss2.hal.emulator import Emulator, EmulatorConfig
from bss2.hal.regmap import REGISTER_MAP

MAPPED = np.concatenate([b.all_addresses.reshape(-1) for b in REGISTER_MAP])


def check_consistent(emulator, words):
    responses = emulator.execute(np.asarray(words, dtype=np.uint64))
    assert responses.dtype == np.uint64
    decoded = wire.decode_responses(responses)
    assert decoded.malformed == 0
    stream = wire.decode_instructions(words)
    n_ends = int(np.count_nonzero((stream.opcode == wire.Opcode.END) & ((stream.payload >> np.uint64(32)) == 0)))
    assert decoded.end_cookies.size == n_ends
    last_is_end = stream.opcode.size and stream.opcode[-1] == wire.Opcode.END and (stream.payload[-1] >> np.uint64(32)) == 0
    if n_ends and last_is_end:  # a malformed END (bits 55..32 set) answers an error instead
        assert (int(responses[-1]) >> 56) == wire.ResponseType.END
    assert np.isfinite(emulator.hardware_time)
    # the emulator stays usable
    assert wire.decode_responses(emulator.execute(wire.encode_read([0]))).read_data.tolist() == [emulator.chip_id]
    return decoded


def valid_opcode_word(draw_opcode, draw_payload):
    return (int(draw_opcode) << 56) | int(draw_payload)


@st.composite
def streams(draw):
    kind = draw(st.sampled_from(["random", "opcodes", "mapped"]))
    n = draw(st.integers(0, 60))
    words = []
    for _ in range(n):
        if kind == "random":
            words.append(draw(st.integers(0, 2**64 - 1)))
        elif kind == "opcodes":
            words.append(valid_opcode_word(draw(st.integers(1, 9)), draw(st.integers(0, 2**56 - 1))))
        else:
            opcode = draw(st.integers(1, 9))
            address = int(draw(st.sampled_from(MAPPED.tolist())))
            low = draw(st.one_of(st.integers(0, 3), st.integers(0, 2**32 - 1)))
            if opcode in (3, 4):
                low = draw(st.integers(1, 300))
            words.append((opcode << 56) | (address << 32) | low)
    return np.array(words, dtype=np.uint64)


@settings(max_examples=150, deadline=None)
@given(words=streams())
def test_random_streams_never_raise(words):
    check_consistent(Emulator(seed=1), words)


@settings(max_examples=40, deadline=None)
@given(cut=st.integers(1, 200), seed=st.integers(0, 3))
def test_truncated_block_streams(cut, seed):
    rng = np.random.default_rng(seed)
    words = np.concatenate([
        wire.encode_write_block(REGISTER_MAP["synapse_quad"].base, rng.integers(0, 2**32, 300)),
        wire.encode_read_block(REGISTER_MAP["cadc_sample_quad"].base, 64),
        wire.encode_end(1),
    ])
    check_consistent(Emulator(seed=seed), words[:cut])


def test_seeded_random_programs_in_a_hagen_configured_chip():
    """Random words spliced into a real hagen program on a configured chip."""
    rng = np.random.default_rng(7)
    emulator = Emulator(seed=4, config=EmulatorConfig.default())
    emulator.execute(hagen.hagen_config_words({0: rng.integers(-63, 64, (128, 256))}))
    program = hagen.hagen_input_words({0: rng.integers(0, 32, (8, 128))}, end_cookie=5)
    for trial in range(30):
        words = program.copy()
        positions = rng.integers(0, words.size, 5)
        words[positions] = rng.integers(0, 2**63, 5, dtype=np.uint64) | (rng.integers(0, 2, 5, dtype=np.uint64) << np.uint64(63))
        if trial % 3 == 0:
            words[positions] = (words[positions] & np.uint64(0x00FF_FFFF_FFFF_FFFF)) | (np.uint64(rng.integers(1, 10)) << np.uint64(56))
        check_consistent(emulator, words)


def test_spike_heavy_random_stream_on_spiking_configuration():
    """Random SPIKES, resets, waits and reads against a chip with random (valid) configuration."""
    rng = np.random.default_rng(3)
    emulator = Emulator(seed=9)
    blocks = ["crossbar_node", "padi_bus_config", "synapse_driver_config", "neuron_config", "neuron_backend_config", "background_spike_source"]
    config = []
    for name in blocks:
        block = REGISTER_MAP[name]
        addresses = block.all_addresses.reshape(-1)
        config.append(wire.encode_write(addresses, rng.integers(0, 2**32, addresses.size)))
    config.append(wire.encode_write_block(REGISTER_MAP["synapse_quad"].base, rng.integers(0, 2**32, 65536)))
    emulator.execute(np.concatenate(config))
    program = np.concatenate([
        wire.encode_timer_reset(),
        wire.encode_spikes(rng.integers(0, 2**16, 300), rng.integers(0, 64, 100)),
        wire.encode_write([REGISTER_MAP["neuron_reset"].base], [15]),
        wire.encode_read_block(REGISTER_MAP["cadc_sample_quad"].base, 256),
        wire.encode_wait_until([3000]),
        wire.encode_end(2),
    ])
    check_consistent(emulator, program)
